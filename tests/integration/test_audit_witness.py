"""Witnessing over mutual TLS, reconciliation of both sides of a query, and the DPO's report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agency.audit.reconcile import reconcile
from agency.audit.report import build_report, skeleton, to_csv
from agency.audit.verify import sidecar_path
from agency.audit.witness import state_path
from agency.config import open_audit_log
from agency.keys import public_key_path
from cli.audit import witness_checkpoint
from cli.display import csv_cell
from cli.main import main
from client.api import MatchClient
from demo.synthetic import make_lists
from psi.errors import RemoteError
from tests.conftest import LiveNode, make_config, tls_for

LISTS = make_lists(40, 30, 10, seed=31)
ROOT = Path(__file__).resolve().parents[2]


def test_partners_witness_each_other_and_reconcile(start_node: Callable[..., LiveNode],
                                                   client_for: Callable[..., MatchClient], pki_dir: Path,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = start_node(LISTS.b)
    config_a = make_config(tmp_path, pki_dir, "agency-a")
    tls_a = tls_for(pki_dir, "agency-a")
    audit_a = open_audit_log(config_a)
    client_for(live).match(LISTS.a, purpose="Art. 8 LED", case_reference="CASE-1", operator="officer-a",
                           audit=audit_a)
    audit_a.close()
    assert "agency-b cosigned" in witness_checkpoint(config_a, live.target, tls_a)
    bundle = state_path(live.config.data_dir, "agency-a")
    first = json.loads(bundle.read_text())["checkpoint"]["count"]

    audit_a = open_audit_log(config_a)  # more entries: the next hand-over carries the proof from `first` on
    client_for(live).match(LISTS.a, purpose="Art. 8 LED", case_reference="CASE-2", operator="officer-a",
                           audit=audit_a)
    audit_a.close()
    witness_checkpoint(config_a, live.target, tls_a)
    assert json.loads(bundle.read_text())["checkpoint"]["count"] > first

    pub_a, log_a = public_key_path(config_a.signing_key_path), config_a.audit_log_path
    capsys.readouterr()
    assert main(["audit", "verify", str(log_a), "--public-key", str(pub_a), "--witness", str(bundle)]) == 0
    assert "witness agency-b cosigned this log" in capsys.readouterr().out

    live.node.audit.close()
    pub_b = public_key_path(live.config.signing_key_path)
    assert main(["audit", "reconcile", "--client", str(log_a), "--client-key", str(pub_a),
                 "--server", str(live.config.audit_log_path), "--server-key", str(pub_b)]) == 0
    assert "2 queries of agency-a to agency-b are logged on both sides" in capsys.readouterr().out

    # agency-a rolls its log back to the first signed state: agency-b refuses to cosign and logs why
    lines = log_a.read_bytes().splitlines(keepends=True)
    cut = next(i for i, raw in enumerate(lines) if json.loads(raw).get("count") == first)
    log_a.write_bytes(b"".join(lines[:cut + 1]))
    sidecar_path(log_a).write_bytes(lines[cut])
    with pytest.raises(RemoteError, match="rollback"):
        witness_checkpoint(config_a, live.target, tls_a)
    assert main(["audit", "verify", str(log_a), "--public-key", str(pub_a), "--witness", str(bundle)]) == 1
    refused = [json.loads(raw)["body"] for raw in live.config.audit_log_path.read_bytes().splitlines()
               if b"witness.refused" in raw]
    assert refused and refused[0]["partner"] == "agency-a"


def test_reconcile_names_an_entry_missing_on_either_side() -> None:
    made = [{"operation": "query.made", "partner": "b", "request_id": "r1", "outcome": "ok", "session_id": "s1",
             "client_elements": 5},
            {"operation": "query.made", "partner": "b", "request_id": "r2", "outcome": "ok", "session_id": "s2",
             "client_elements": 5}]
    served = [{"operation": "query.served", "partner": "a", "request_id": "r1", "session_id": "s1",
               "client_elements": 5},
              {"operation": "query.served", "partner": "a", "request_id": "r3", "session_id": "s3",
               "client_elements": 1}]
    result = reconcile(made, served, "a", "b")
    assert (result.matched, result.clean) == (1, False)
    assert [b["request_id"] for b in result.missing_on_server] == ["r2"]
    assert [b["request_id"] for b in result.missing_on_client] == ["r3"]


def test_the_dpo_report_lists_queries_disclosures_and_lookalike_cases() -> None:
    bodies = [
        {"time": "2026-05-01T10:00:00.000000Z", "operation": "query.made", "partner": "agency-b",
         "purpose": "Art. 8 LED", "case": "CASE-1", "operator": "officer-a", "mode": "intersection",
         "client_records": 40, "hits": 3, "outcome": "ok", "status": "OK"},
        {"time": "2026-05-01T11:00:00.000000Z", "operation": "request.refused", "partner": "agency-b",
         "case": "CASE-\u0031", "purpose": "=HYPERLINK(1)", "operator": "o", "outcome": "refused",
         "status": "PERMISSION_DENIED", "message": "mode not agreed"},
        {"time": "2026-05-01T12:00:00.000000Z", "operation": "query.made", "partner": "agency-b",
         "case": "\u0421ASE-1", "outcome": "ok", "status": "OK"},
        {"time": "2026-05-02T09:00:00.000000Z", "operation": "followup.approved", "followup_id": "f1",
         "decided_by": "officer-b", "phase": "outcome"},
        {"time": "2026-05-02T10:00:00.000000Z", "operation": "followup.disclosed", "followup_id": "f1",
         "partner": "agency-a", "fields_released": ["birth_date", "name"], "case": "CASE-1", "purpose": "p"},
    ]
    report = build_report(bodies, case="CASE-1")
    assert [(r["operation"], r["officer"], r["records"], r["hits"], r["reason"]) for r in report.listing] == [
        ("query.made", "officer-a", 40, 3, ""), ("request.refused", "o", "", "", "mode not agreed")]
    assert report.disclosures == [{"time": "2026-05-02T10:00:00.000000Z", "followup_id": "f1", "to": "agency-a",
                                   "fields": "birth_date, name", "approved_by": "officer-b", "case": "CASE-1",
                                   "purpose": "p"}]
    assert report.lookalikes == [["CASE-1", "\u0421ASE-1"]] and skeleton("CASE-1") == skeleton("\u0421ASE-1")
    csv_text = to_csv(report, csv_cell)
    assert csv_text.splitlines()[0].startswith("verification,NOT INTACT,NOT VERIFIED")
    assert "'=HYPERLINK(1)" in csv_text
