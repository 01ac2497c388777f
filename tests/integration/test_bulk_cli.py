"""`psi match --mode bulk|auto` as an officer runs it: the same hits file as intersection mode, the mode
auto took and why, and the query in the node's own audit log."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.main import main
from psi.record_parsing import format_csv
from tests.conftest import LiveNode, make_config
from tests.integration import raw_calls
from tests.integration.test_bulk import LISTS, agreements


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return sorted(csv.DictReader(handle), key=lambda r: (r["local_id"], r["partner_reference"]))


def test_match_in_bulk_and_auto_mode(start_node: Callable[..., LiveNode], pki_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    live = start_node(LISTS.b, partners=(), extra=agreements())
    own = make_config(tmp_path, pki_dir, "agency-a", partners=("agency-b",))
    (tmp_path / "a.csv").write_text(format_csv(LISTS.a), encoding="utf-8")
    common = ["match", "--server", live.target, "--input", str(tmp_path / "a.csv"), "--config",
              str(tmp_path / "agency-a.toml"), "--purpose", "p", "--case", "CLI-B", "--quiet"]
    assert main([*common, "--mode", "bulk", "--out", str(tmp_path / "bulk.csv")]) == 0
    assert "in bulk mode:" in capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "plain.csv")]) == 0
    capsys.readouterr()
    assert _rows(tmp_path / "bulk.csv") == _rows(tmp_path / "plain.csv") != []
    assert main([*common, "--mode", "auto", "--out", str(tmp_path / "auto.csv")]) == 0
    out = capsys.readouterr()
    assert "mode auto: intersection (a tag cache of the partner's list is warm" in out.err
    made = [b for b in raw_calls.audit_bodies(own.audit_log_path) if b["operation"] == "query.made"]
    assert [(b["mode"], b.get("end_state")) for b in made] == [("bulk", "completed"), ("intersection", None),
                                                               ("intersection", None)]
