"""A match run end to end leaves the expected, identifier-free entries on both nodes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from agency.audit.chain import Verifier
from agency.audit.report import build_report, to_html
from agency.audit.verify import verify_log
from agency.config import open_audit_log
from agency.keys import public_key_path
from cli.main import main
from client.api import MatchClient
from demo.synthetic import make_lists
from psi.messages import Mode
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from tests.conftest import LiveNode, make_config, tls_for

LISTS = make_lists(120, 100, 30, seed=21)


def _verified_bodies(log: Path, signing_key: Path) -> list[dict[str, object]]:
    verdict = verify_log(log, Verifier(public_key_path(signing_key).read_text()))
    assert verdict.intact, verdict.problem
    # What happened, once each: an intent is followed by its outcome, and key lifecycle entries are the owner's.
    return [body for _, body in verdict.state.entries
            if body.get("phase") != "intent" and not str(body["operation"]).startswith("key.")]


def test_both_nodes_log_every_operation_without_identifiers(
        start_node: Callable[..., LiveNode], client_for: Callable[..., MatchClient], pki_dir: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = start_node(LISTS.b)
    config_a = make_config(tmp_path, pki_dir, "agency-a")
    audit_a = open_audit_log(config_a)
    client = client_for(live)
    result = client.match(LISTS.a, purpose="Art. 6 LED", case_reference="CASE-7", operator="officer-a",
                          audit=audit_a)
    counted = client.match(LISTS.a, purpose="statistics", case_reference="CASE-8", operator="officer-a",
                           mode=Mode.CARDINALITY, audit=audit_a)
    with grpc.secure_channel(live.target, tls_for(pki_dir, "agency-a").credentials()) as channel, \
            pytest.raises(grpc.RpcError):
        start = pb.SessionStart(list_id="wanted-persons", mode=pb.MODE_INTERSECTION, key_epoch=1,
                                profile_id="exact/1", profile_hash=live.config.profile.definition_hash,
                                total_elements=1, purpose="", case_reference="CASE-9", request_id="r-9")
        list(pb_grpc.MatchingStub(channel).Evaluate(iter([pb.EvaluateRequest(start=start)])))
    audit_a.close()
    live.node.audit.close()

    b = _verified_bodies(live.config.audit_log_path, live.config.signing_key_path)
    policy = b.pop(1)
    assert (policy["operation"], policy["partners"]) == ("policy.change", ["agency-a", "agency-b"])
    a = _verified_bodies(config_a.audit_log_path, config_a.signing_key_path)
    # Tags are fetched while the evaluation runs, so their entries may come first or second.
    assert sorted(e["operation"] for e in b[1:3]) == sorted(e["operation"] for e in b[3:5]) == [
        "query.served", "tags.served"]
    assert [e["operation"] for e in (b[0], b[5])] == ["watchlist.import", "request.refused"]
    assert [e["operation"] for e in a] == ["query.made", "query.made"]

    imported, refused = b[0], b[5]
    served, served_card = (e for e in b if e["operation"] == "query.served")
    tags_served = [e for e in b if e["operation"] == "tags.served"]
    assert [(t["mode"], t["partner"], t["server_records"]) for t in tags_served] == [
        ("intersection", "agency-a", 100), ("cardinality", "agency-a", 100)]
    assert (imported["added"], imported["updated"], imported["operator"]) == (100, 0, "test-operator")
    keys_sent = result.keys
    expected_served = {"node": "agency-b", "partner": "agency-a", "role": "server", "purpose": "Art. 6 LED",
                       "case": "CASE-7", "operator": "officer-a", "mode": "intersection",
                       "suite": "ristretto255-SHA512", "profile": "exact/1", "key_epoch": 1,
                       "client_elements": keys_sent, "server_records": 100, "outcome": "ok", "status": "OK"}
    assert {k: served[k] for k in expected_served} == expected_served
    assert (served["request_id"], served["session_id"]) == (a[0]["request_id"], a[0]["session_id"])
    assert served["session_id"]
    assert (served_card["mode"], served_card["case"], served_card["client_elements"]) == (
        "cardinality", "CASE-8", counted.keys)
    assert (refused["status"], refused["case"], refused["outcome"]) == ("INVALID_ARGUMENT", "CASE-9", "refused")
    assert "purpose" in str(refused["message"])

    made = a[0]
    expected_made = {"node": "agency-a", "partner": "agency-b", "role": "client", "purpose": "Art. 6 LED",
                     "case": "CASE-7", "operator": "officer-a", "mode": "intersection", "client_records": 120,
                     "client_elements": keys_sent, "server_records": 100, "hits": len(LISTS.overlap),
                     "outcome": "ok"}
    assert {k: made[k] for k in expected_made} == expected_made
    assert made["hit_record_ids"] == sorted(a_id for a_id, _ in LISTS.overlap)
    assert (a[1]["hits"], a[1]["mode"], "hit_record_ids" in a[1]) == (len(LISTS.overlap), "cardinality", True)
    assert a[1]["hit_record_ids"] == []

    raw = live.config.audit_log_path.read_bytes() + config_a.audit_log_path.read_bytes()
    text = raw.decode().casefold()
    for record in (*LISTS.a, *LISTS.b):
        assert record.name.casefold() not in text, "a raw name is in an audit log"
        assert record.name.encode() not in raw
        for doc in record.documents:
            assert doc.number not in raw.decode(), "a document number is in an audit log"
        if record.birth_date:
            assert f'"{record.birth_date.isoformat()}"' not in raw.decode()

    report_b = build_report(b)
    partner = report_b.by_partner["agency-a"]
    assert (partner.queries_served, partner.elements_evaluated, partner.refused) == (
        2, result.keys + counted.keys, 1)
    report_a = build_report(a)
    made_counts = report_a.by_partner["agency-b"]
    assert (made_counts.queries_made, made_counts.records_compared, made_counts.hits) == (
        2, 2 * len(LISTS.a), 2 * len(LISTS.overlap))
    report_b.verdict, report_b.intact = "intact", True
    page = to_html(report_b, "audit.log")
    for number in (str(partner.elements_evaluated), ">2<", ">1<", "agency-a", "Art. 6 LED", "<svg"):
        assert number in page

    out = tmp_path / "report.html"
    pub = public_key_path(live.config.signing_key_path)
    assert main(["audit", "report", str(live.config.audit_log_path), "--public-key", str(pub),
                 "--format", "html", "--out", str(out)]) == 0
    assert f">{partner.elements_evaluated}<" in out.read_text()
    assert main(["audit", "verify", str(live.config.audit_log_path), "--public-key", str(pub)]) == 0
    assert "intact: 9 entries" in capsys.readouterr().out  # with the import's intent and key.created
