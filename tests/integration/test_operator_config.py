"""Issue 16: each config mistake an operator makes is one line naming what to fix, a non-zero exit,
and nothing left on disk (no data dir, no keys, no audit entry)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agency.config import DEFAULT_PROFILE, render_config
from cli.exit_codes import ExitCode
from cli.main import main
from psi.record_parsing import format_jsonl
from tests.integration.test_import_cli import RECORDS


def _config(tmp: Path, pki: Path, edit: tuple[str, str] | None = None, extra: str = "") -> Path:
    text = render_config("agency-b", "127.0.0.1:50052", "data", str(pki / "ca.pem"), str(pki / "agency-b.pem"),
                         str(pki / "agency-b.key"), partners=("agency-a",)) + extra
    if edit:
        assert edit[0] in text
        text = text.replace(*edit, 1)
    path = tmp / "agency-b.toml"
    path.write_text(text)
    return path


MISTAKES = [  # (what the operator wrote, what the one line must say)
    (('listen = "127.0.0.1:50052"', 'lisen = "127.0.0.1:50052"'), r":3: \[node\] unknown key 'lisen' "
                                                                  r"\(did you mean 'listen'\?\)"),
    (('data_dir = "data"', 'data-dir = "data"'), r":4: \[node\] unknown key 'data-dir' \(did you mean 'data_dir'\?\)"),
    (("[partners.agency-a]", "[partner.agency-a]"), r":\d+: unknown section \[partner\] "
                                                    r"\(did you mean \[partners\]\?\)"),
    (('lists = ["wanted-persons"]', 'list = ["wanted-persons"]'), r"\[partners.agency-a\] unknown key 'list' "
                                                                  r"\(did you mean 'lists'\?\)"),
    (('cert = "', 'cert = "x'), r"\[tls\] cert: cannot read .*x.*agency-b.pem: No such file"),
    (("[tls]", "[tsl]"), r"unknown section \[tsl\] \(did you mean \[tls\]\?\)"),
    (('listen = "127.0.0.1:50052"', 'listen = "127.0.0.1"'), r"\[node\] listen = '127.0.0.1': needs a host and a port"),
    (('listen = "127.0.0.1:50052"', 'listen = "127.0.0.1:99999"'), r"the port 99999 is out of range \(1-65535\)"),
    (('listen = "127.0.0.1:50052"', 'listen = "127.0.0.1:abc"'), r"the port 'abc' is not a number"),
    (("agency-b.key", "agency-a.key"), r"\[tls\] key: .*agency-a.key is not the key of the certificate"),
    (('cert = "', 'cert = "'), None),  # placeholder replaced below: another node's certificate and key
    (("checkpoint_every = 100", "checkpoint_every = 0"), r"\[audit\] checkpoint_every must be a positive integer"),
    (("[audit]", "[limits]\nmax_batch_size = -1\n[audit]"), r"\[limits\] max_batch_size must be a positive integer"),
    (('modes = ["intersection", "cardinality"]', 'modes = ["intersection"]\nmax_sessions = 0'),
     r"\[partners.agency-a\] max_sessions must be a positive integer"),
    ((f'profile = "{DEFAULT_PROFILE}"', 'profile = "standart"'), rf"profile 'standart' is unknown \(did you mean "
                                                                   rf"'{DEFAULT_PROFILE}'\?\)"),
]
MISTAKES[10] = (("agency-b.pem", "agency-a.pem"), None)


def _assert_refused(capsys: pytest.CaptureFixture[str], code: int, pattern: str) -> None:
    assert code == ExitCode.CONFIG
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err  # one line, no traceback
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize(("edit", "pattern"), MISTAKES, ids=lambda x: str(x)[:40])
def test_each_config_mistake_is_one_line_and_leaves_nothing_behind(
        tmp_path: Path, pki_dir: Path, capsys: pytest.CaptureFixture[str],
        edit: tuple[str, str], pattern: str | None) -> None:
    if pattern is None:  # another node's certificate (and its own key): served without a check before
        path = _config(tmp_path, pki_dir)
        text = path.read_text().replace("agency-b.pem", "agency-a.pem")
        path.write_text(text.replace("agency-b.key", "agency-a.key"))
        pattern = r"\[tls\] cert: .*agency-a.pem is issued to 'agency-a', but \[node\] id is 'agency-b'"
    else:
        path = _config(tmp_path, pki_dir, edit)
    records = tmp_path / "list.jsonl"
    records.write_text(format_jsonl(RECORDS))
    before = sorted(tmp_path.iterdir())
    _assert_refused(capsys, main(["config", "check", "--config", str(path)]), pattern)
    _assert_refused(capsys, main(["watchlist", "import", str(records), "--config", str(path), "--quiet"]), pattern)
    _assert_refused(capsys, main(["keys", "init", "--config", str(path)]), pattern)
    assert sorted(tmp_path.iterdir()) == before  # no data dir, no keys, no audit log


def test_a_certificate_of_another_ca_is_refused(tmp_path: Path, pki_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, pki_dir, ("agency-b.pem", "rogue/agency-a.pem"))
    path.write_text(path.read_text().replace('id = "agency-b"', 'id = "agency-a"')
                    .replace("agency-b.key", "rogue/agency-a.key"))
    _assert_refused(capsys, main(["config", "check", "--config", str(path)]),
                    r"\[tls\] cert: .*rogue/agency-a.pem is not signed by the CA in .*ca.pem")


def test_config_check_prints_what_the_node_would_serve(tmp_path: Path, pki_dir: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, pki_dir, extra='\n[metrics]\nlisten = "127.0.0.1:9464"\n')
    assert main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: OK" in out
    assert f"node agency-b: list 'wanted-persons', profile {DEFAULT_PROFILE}" in out
    assert "listen 127.0.0.1:50052 with mutual TLS" in out
    assert "metrics http://127.0.0.1:9464/metrics" in out
    assert "partner agency-a: lists wanted-persons; modes intersection, cardinality" in out
    assert "data dir" in out and "created on first use" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agency-b.toml"]  # a check creates nothing


def test_the_metrics_port_must_differ_from_the_node_port(tmp_path: Path, pki_dir: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, pki_dir, extra='\n[metrics]\nlisten = "127.0.0.1:50052"\n')
    _assert_refused(capsys, main(["config", "check", "--config", str(path)]),
                    r"\[metrics\] listen 127.0.0.1:50052 uses the port of \[node\] listen")
