"""Issue 16: the command line as an operator meets it: no tracebacks, distinct exit codes, help for every
option, a README generated from the parser, output that a pipe does not wrap, JSON logs on request."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from cli import reference
from cli.exit_codes import EXIT_BY_ERROR, ExitCode
from cli.main import build_parser, leaf_parsers, main

ROOT = Path(__file__).resolve().parents[2]


def test_pki_init_refuses_to_replace_a_ca_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "init", "--out", str(tmp_path), "agency-a"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert main(["pki", "init", "--out", str(tmp_path), "agency-a", "agency-c"]) == ExitCode.CONFIG
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "already holds ca.pem, ca.key, agency-a.pem" in err and "--force" in err
    assert "\n" not in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # not even agency-c was written
    assert main(["pki", "init", "--out", str(tmp_path), "agency-a", "--force"]) == 0
    assert (tmp_path / "ca.pem").read_bytes() != before["ca.pem"]


def test_audit_verify_of_a_missing_log_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "key.pub.pem"
    key.write_text("unused")
    assert main(["audit", "verify", str(tmp_path / "nope.log"), "--public-key", str(key)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err == f"error: no audit log at {tmp_path / 'nope.log'}: give the path of a node's audit log " \
                  "(its data_dir/audit.log)\n"


def test_a_long_error_is_not_wrapped_when_stderr_is_not_a_terminal(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6, "missing.toml")
    assert main(["config", "check", "--config", str(deep)]) == ExitCode.CONFIG
    assert capsys.readouterr().err == f"error: config file {deep} does not exist\n"


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.toml")
    assert main(["config", "check", "--config", missing, "--debug"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ConfigurationError" in err
    assert main(["--debug", "config", "check", "--config", missing]) == ExitCode.CONFIG  # before the command too
    assert main(["config", "check", "--config", missing]) == ExitCode.CONFIG
    assert "Traceback" not in capsys.readouterr().err.split("error: ")[-1]


def test_exit_codes_are_distinct_per_failure_class() -> None:
    codes = [code for _, code in EXIT_BY_ERROR]
    assert len(set(ExitCode)) == len(ExitCode)
    assert ExitCode.OK not in codes and ExitCode.INTERNAL not in codes
    documented = (ROOT / "docs" / "operations.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} |" in documented, code


def test_every_option_has_help() -> None:
    missing = [f"{command.prog} {action.option_strings or action.dest}" for command in leaf_parsers(build_parser())
               for action in command._actions if not action.help and not isinstance(action, argparse._HelpAction)]
    assert missing == []


def test_the_readme_command_reference_is_the_clis() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert reference.readme_section(readme) == reference.render(), \
        "README.md's command reference is stale: run `python -m cli.reference --write README.md`"


def test_json_logs_are_one_object_per_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--log-format", "json", "config", "check", "--config", str(tmp_path / "x.toml")]) == ExitCode.CONFIG
    capsys.readouterr()
    logging.getLogger("server.test").warning("node %s refused", "agency-b", extra={"partner": "agency-a"})
    line = json.loads(capsys.readouterr().err)
    assert (line["level"], line["logger"], line["message"], line["partner"]) == (
        "warning", "server.test", "node agency-b refused", "agency-a")
    main(["--log-format", "text", "config", "check", "--config", str(tmp_path / "x.toml")])  # back to text
