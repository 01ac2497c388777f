"""The `psi` command line as a user runs it: pki, import, serve, match."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agency.config import load_config, render_config
from cli.main import HIT_COLUMNS, main
from client.api import ClientTls, wait_for_node
from demo.synthetic import make_lists
from psi.record_parsing import format_csv, format_jsonl
from server.store import Store

LISTS = make_lists(200, 150, 40, seed=3)
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _setup(tmp: Path) -> dict[str, Path]:
    assert main(["pki", "init", "--out", str(tmp / "pki"), "agency-a", "agency-b"]) == 0
    assert (tmp / "pki" / "agency-b.key").stat().st_mode & 0o077 == 0
    port = _free_port()
    for node in ("agency-a", "agency-b"):
        (tmp / f"{node}.toml").write_text(render_config(node, f"127.0.0.1:{port}", f"data-{node}",
                                                        "pki/ca.pem", f"pki/{node}.pem", f"pki/{node}.key",
                                                        partners=("agency-a", "agency-b")))
    (tmp / "a.csv").write_text(format_csv(LISTS.a), encoding="utf-8")
    (tmp / "b.jsonl").write_text(format_jsonl(LISTS.b), encoding="utf-8")
    return {"a": tmp / "agency-a.toml", "b": tmp / "agency-b.toml", "port": Path(str(port))}


def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _setup(tmp_path)
    assert main(["watchlist", "import", str(tmp_path / "b.jsonl"), "--config", str(paths["b"]),
                 "--quiet"]) == 0
    assert "read 150 records: 150 new, 0 updated, 0 unchanged" in capsys.readouterr().out
    port = int(str(paths["port"]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--config", str(paths["b"]),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        pki = tmp_path / "pki"
        tls = ClientTls(pki / "ca.pem", pki / "agency-a.pem", pki / "agency-a.key")
        wait_for_node(f"127.0.0.1:{port}", tls, alive=lambda: proc.poll() is None)
        out = tmp_path / "hits.csv"
        code = main(["match", "--server", f"127.0.0.1:{port}", "--input", str(tmp_path / "a.csv"),
                     "--out", str(out), "--config", str(paths["a"]), "--purpose", "test",
                     "--case", "CLI-1", "--quiet"])
        assert code == 0
        assert "200 records (" in capsys.readouterr().out
        with out.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        refs = {r.record_id: r.reference for r in LISTS.b}
        assert tuple(rows[0]) == HIT_COLUMNS
        assert {(r["local_id"], r["partner_reference"]) for r in rows} == {
            (a, refs[b]) for a, b in LISTS.overlap}
        assert main(["match", "--server", f"127.0.0.1:{port}", "--input", str(tmp_path / "a.csv"),
                     "--config", str(paths["a"]), "--purpose", "test", "--case", "CLI-2",
                     "--mode", "cardinality", "--quiet", "--out", str(tmp_path / "unused.csv")]) == 0
        assert f"{len(LISTS.overlap)} records are on the partner's list" in capsys.readouterr().out
        assert not (tmp_path / "unused.csv").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "stopped" in stdout


def test_cli_reports_errors_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _setup(tmp_path)
    code = main(["match", "--server", "127.0.0.1:1", "--input", str(tmp_path / "missing.csv"),
                 "--config", str(paths["a"]), "--purpose", "p", "--case", "c", "--quiet"])
    assert code == 2
    assert "cannot read" in capsys.readouterr().err


def _store_state(config_path: Path) -> tuple[int, list[object]]:
    store = Store(load_config(config_path).store_path)
    try:
        return store.list_version, store.records()
    finally:
        store.close()


@pytest.mark.parametrize(("name", "text", "message", "strict"), [
    ("bad.csv", "id,name,birth_date,reference\n1,Ann,1980-01-01,R1\n2,Bob,1980-02-30,R2\n",
     "line 3, field 'birth_date'", ["--strict"]),  # without --strict the date is dropped with a warning
    ("bad.jsonl", '{"id": "1", "name": "Ann", "reference": "R"}\n{"id": "2", "name": "Bob"}\n',
     "line 2, field 'reference'", []),
    ("bad.csv", "id,name,reference\n1,Ann,R1\n1,Ann again,R2\n", "duplicate id", []),
    ("bad.txt", "whatever", "cannot tell the format", []),
])
def test_malformed_import_leaves_the_store_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     name: str, text: str, message: str, strict: list[str]) -> None:
    paths = _setup(tmp_path)
    assert main(["watchlist", "import", str(tmp_path / "b.jsonl"), "--config", str(paths["b"]),
                 "--quiet"]) == 0
    before = _store_state(paths["b"])
    (tmp_path / name).write_text(text, encoding="utf-8")
    assert main(["watchlist", "import", str(tmp_path / name), "--config", str(paths["b"]), "--quiet", *strict]) == 2
    assert message in capsys.readouterr().err
    assert _store_state(paths["b"]) == before


def test_reimport_updates_records_by_id(tmp_path: Path) -> None:
    paths = _setup(tmp_path)
    first = LISTS.b[:3]
    assert main(["watchlist", "import", str(tmp_path / "b.jsonl"), "--config", str(paths["b"]),
                 "--quiet"]) == 0
    changed = tmp_path / "changed.jsonl"
    changed.write_text(format_jsonl([replace(r, reference="NEW") for r in first]),
                       encoding="utf-8")
    assert main(["watchlist", "import", str(changed), "--config", str(paths["b"]), "--quiet"]) == 0
    _, records = _store_state(paths["b"])
    assert len(records) == 150
    assert {r.reference for r in records if r.record_id in {f.record_id for f in first}} == {"NEW"}  # type: ignore[attr-defined]
