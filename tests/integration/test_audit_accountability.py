"""Who changed what and why: operators and justifications in the log, and no unlogged query."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agency.config import NodeConfig
from cli.main import main
from demo.synthetic import make_lists
from psi.record_parsing import format_jsonl
from server.app import open_node
from tests.conftest import make_config

RECORDS = make_lists(5, 20, 0, seed=71).b


def _bodies(config: NodeConfig) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in config.audit_log_path.read_text().splitlines()]
    return [line["body"] for line in lines if line["kind"] == "entry" and line["body"].get("phase") != "intent"]


def test_list_changes_and_policy_changes_name_operator_and_justification(tmp_path: Path, pki_dir: Path) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    toml = str(tmp_path / "agency-b.toml")
    path = tmp_path / "list.jsonl"
    path.write_text(format_jsonl(RECORDS))
    assert main(["watchlist", "import", str(path), "--config", toml, "--operator", "officer 7",
                 "--justification", "weekly refresh, ticket 42", "--quiet"]) == 0
    assert main(["watchlist", "erase", RECORDS[0].record_id, "--config", toml, "--operator", "officer 8",
                 "--justification", "alert cancelled"]) == 0
    open_node(config, operator="admin 1", justification="new agreement with agency-a").close()
    changes = [(b["operation"], b["operator"], b["justification"]) for b in _bodies(config)
               if b["operation"] in ("watchlist.import", "watchlist.erase", "policy.change")]
    assert changes == [("watchlist.import", "officer 7", "weekly refresh, ticket 42"),
                       ("watchlist.erase", "officer 8", "alert cancelled"),
                       ("policy.change", "admin 1", "new agreement with agency-a")]


def test_a_justification_is_bounded(tmp_path: Path, pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_config(tmp_path, pki_dir, "agency-b")
    with pytest.raises(SystemExit):
        main(["watchlist", "erase", "x", "--config", str(tmp_path / "agency-b.toml"), "--justification", "j" * 513])
    assert "at most 512 characters" in capsys.readouterr().err


def test_a_match_under_an_agencys_certificate_is_always_logged(tmp_path: Path, pki_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(format_jsonl(RECORDS))
    common = ["match", "--server", "127.0.0.1:1", "--input", str(path), "--purpose", "p", "--case", "c", "--quiet",
              "--ca", str(pki_dir / "ca.pem"), "--cert", str(pki_dir / "agency-a.pem"),
              "--key", str(pki_dir / "agency-a.key")]
    assert main(common) == 2
    assert "must be logged" in capsys.readouterr().err
    log = tmp_path / "audit.log"
    assert main([*common, "--audit-log", str(log), "--signing-key", str(tmp_path / "keys" / "audit.pem")]) == 6
    made = [json.loads(line)["body"] for line in log.read_text().splitlines() if '"entry"' in line]
    assert [(b["operation"], b["node"], b["outcome"]) for b in made] == [("query.made", "agency-a", "refused")]
