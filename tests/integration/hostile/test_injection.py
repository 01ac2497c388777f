"""Threat: injection. Partner text reaches officers as text: never markup, escape codes or formulas."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from rich.console import Console

import cli.followup
from agency.keys import public_key_path
from cli.followup import hit_from_file, print_status
from cli.main import main, write_hits
from client.api import MatchClient
from psi.client_query import Hit, MatchResult
from psi.messages import FollowUpStatus, Mode
from psi.profiles import Strength
from psiwire import matching_pb2 as pb
from tests.integration.hostile.conftest import LISTS, Code, Hostile, refusal

HOSTILE_TEXT = "[bold]urgent[/bold] [/x] \x1b[31mred\x1b]8;;https://evil.example\x07link\x1b]8;;\x07\x9b2J"


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(cli.followup, "console", Console(file=out, width=1000, force_terminal=True))
    return out


def _inert(shown: str) -> None:
    assert "[bold]urgent[/bold] [/x]" in shown  # markup shown as typed, and "[/x]" does not crash rich
    assert "https://evil.example" in shown and "\x1b]8" not in shown and "\x9b" not in shown
    assert "\x1b[31m" not in shown


def test_a_partners_follow_up_text_is_shown_as_text(hostile: Hostile, screen: io.StringIO) -> None:
    with MatchClient(hostile.live.target, hostile.tls(), partner="agency-b") as client:
        hit = client.match(LISTS.a, purpose="p", case_reference="c").hits[0]
        client.request_followup(hit, purpose=HOSTILE_TEXT, case_reference=HOSTILE_TEXT, officer=HOSTILE_TEXT,
                                message=HOSTILE_TEXT)
    config = str(hostile.live.config.data_dir.parent / "agency-b.toml")
    assert main(["followup", "list", "--config", config]) == 0
    _inert(screen.getvalue())


def test_a_partners_answer_is_shown_as_text(screen: io.StringIO) -> None:
    print_status(FollowUpStatus("f1", "approved", "2030-01-01T00:00:00Z", False, HOSTILE_TEXT,
                                (("name", HOSTILE_TEXT),), HOSTILE_TEXT, HOSTILE_TEXT))
    _inert(screen.getvalue())


def test_hits_csv_cells_never_start_a_formula(tmp_path: Path) -> None:
    hostile_ref = '=HYPERLINK("https://evil.example","open")'
    hits = (Hit("a1", hostile_ref, "@SUM(A1)", ("name",), Strength.STRONG, b"\x01" * 32),
            Hit("a2", "+49 REF", "-1", ("name",), Strength.STRONG, b"\x02" * 32))
    out = tmp_path / "hits.csv"
    write_hits(out, MatchResult(Mode.INTERSECTION, 2, 2, 2, hits))
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells = [value for row in rows for value in row.values()]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert hit_from_file(out, hostile_ref).reference == hostile_ref  # a follow-up still finds the hit


def test_another_partners_follow_up_answers_exactly_like_an_unknown_id(hostile: Hostile) -> None:
    with MatchClient(hostile.live.target, hostile.tls(), partner="agency-b") as client:
        hit = client.match(LISTS.a, purpose="p", case_reference="c").hits[0]
        theirs = client.request_followup(hit, purpose="p", case_reference="c", officer="o").followup_id
    eager = hostile.stub("eager")
    unknown = "f" * len(theirs)
    assert refusal(lambda: eager.GetFollowUp(pb.GetFollowUpRequest(followup_id=theirs))) == (
        Code.NOT_FOUND, f"no follow-up request '{theirs}'")
    assert refusal(lambda: eager.GetFollowUp(pb.GetFollowUpRequest(followup_id=unknown))) == (
        Code.NOT_FOUND, f"no follow-up request '{unknown}'")


def test_partner_text_in_the_audit_log_is_inert_in_every_report(hostile: Hostile,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    start = pb.SessionStart(list_id="", mode=pb.MODE_INTERSECTION, key_epoch=99, profile_id="exact/1",
                            total_elements=1, purpose=HOSTILE_TEXT, case_reference='=HYPERLINK("x")',
                            operator=HOSTILE_TEXT, request_id="r-inject")
    assert refusal(lambda: list(hostile.stub().Evaluate(iter([pb.EvaluateRequest(start=start)]))))[0] in (
        Code.FAILED_PRECONDITION, Code.ABORTED)
    config = hostile.live.config
    hostile.live.node.audit.checkpoint()
    key = ["--public-key", str(public_key_path(config.signing_key_path))]
    assert main(["audit", "report", str(config.audit_log_path), *key, "--entries"]) == 0  # "[/x]" crashed it
    table = capsys.readouterr().out
    assert "[bold]" in table and "\x1b" not in table and "\x9b" not in table and "\x07" not in table
    assert main(["audit", "report", str(config.audit_log_path), *key, "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert any("'=HYPERLINK" in cell for row in rows for cell in row)
