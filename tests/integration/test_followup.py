"""After a hit: the follow-up request, an officer's decision, and what is (not) released."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from agency.audit.chain import Verifier
from agency.audit.verify import verify_log
from agency.config import open_audit_log
from agency.keys import public_key_path
from client.api import MatchClient
from demo.synthetic import make_lists
from psi import followup
from psi.errors import InputError, OutOfOrderError, RemoteError
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from tests.conftest import LiveNode, make_config, tls_for

LISTS = make_lists(120, 100, 20, seed=61)
RECORDS_B = {r.reference: r for r in LISTS.b}


def _operations(log: Path, signing_key: Path) -> list[dict[str, object]]:
    verdict = verify_log(log, Verifier(public_key_path(signing_key).read_text()))
    assert verdict.intact
    return [b for _, b in verdict.state.entries
            if str(b["operation"]).startswith("followup.") and b.get("phase") != "intent"]


def test_approved_fields_reach_the_requester_and_nothing_else(
        start_node: Callable[..., LiveNode], client_for: Callable[..., MatchClient], pki_dir: Path,
        tmp_path: Path) -> None:
    live = start_node(LISTS.b)
    config_a = make_config(tmp_path, pki_dir, "agency-a")
    audit_a = open_audit_log(config_a)
    a = client_for(live, "agency-a")
    hits = a.match(LISTS.a, purpose="p", case_reference="CASE-1").hits
    first, second = hits[0], hits[1]

    status = a.request_followup(first, purpose="Art. 7 LED follow-up", case_reference="CASE-1",
                                officer="officer-a", message="please confirm identity", audit=audit_a)
    assert (status.status, status.overdue, status.fields) == ("pending", False, ())
    deadline = dt.datetime.fromisoformat(status.deadline.replace("Z", "+00:00"))
    assert dt.timedelta(hours=47) < deadline - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=48)
    assert a.followup_status(status.followup_id).fields == ()  # nothing before a decision

    desk = live.node.followups
    assert [i.followup_id for i in desk.all()] == [status.followup_id]
    with pytest.raises(InputError, match="fields must be some of"):
        desk.decide(status.followup_id, "officer-b", approve_fields=["address"])
    desk.decide(status.followup_id, "officer-b", approve_fields=["name", "birth_date"])
    with pytest.raises(OutOfOrderError, match="already approved"):
        desk.decide(status.followup_id, "officer-b", reason="changed my mind")
    released = a.followup_status(status.followup_id, audit=audit_a)
    record = RECORDS_B[first.reference]
    assert released.status == "approved" and released.decided_by == "officer-b"
    assert dict(released.fields) == {"name": record.name, "birth_date": record.birth_date.isoformat()}

    denied = a.request_followup(second, purpose="p", case_reference="CASE-1", officer="officer-a")
    desk.decide(denied.followup_id, "officer-b", reason="no legal basis given")
    answer = a.followup_status(denied.followup_id)
    assert (answer.status, answer.fields, answer.reason) == ("denied", (), "no legal basis given")

    audit_a.close()
    live.node.audit.close()
    b_ops = [e["operation"] for e in _operations(live.config.audit_log_path, live.config.signing_key_path)]
    assert b_ops == ["followup.received", "followup.approved", "followup.disclosed", "followup.received",
                     "followup.denied"]
    a_entries = _operations(config_a.audit_log_path, config_a.signing_key_path)
    assert [(e["operation"], e.get("fields_received")) for e in a_entries] == [
        ("followup.requested", None), ("followup.received", ["birth_date", "name"])]
    text = (live.config.audit_log_path.read_text() + config_a.audit_log_path.read_text())
    assert record.name not in text and "please confirm identity" not in text
    assert "no legal basis given" not in text  # a deny reason is logged as its length, like a message
    denials = [e for e in _operations(live.config.audit_log_path, live.config.signing_key_path)
               if e["operation"] == "followup.denied"]
    assert [e["reason_chars"] for e in denials] == [len("no legal basis given")]


def test_made_up_and_copied_references_are_refused(
        start_node: Callable[..., LiveNode], client_for: Callable[..., MatchClient], pki_dir: Path) -> None:
    live = start_node(LISTS.b)
    a = client_for(live, "agency-a")
    hit = a.match(LISTS.a, purpose="p", case_reference="c").hits[0]
    made_up = replace(hit, reference="B-REF-9999999", followup_key=os.urandom(32))
    with pytest.raises(RemoteError) as refused:
        a.request_followup(made_up, purpose="p", case_reference="c", officer="o")
    assert refused.value.status == "PERMISSION_DENIED"
    guessed_key = replace(hit, followup_key=os.urandom(32))  # a real reference without the hit
    with pytest.raises(RemoteError) as refused:
        a.request_followup(guessed_key, purpose="p", case_reference="c", officer="o")
    assert refused.value.status == "PERMISSION_DENIED"

    # Agency A's exact request, replayed by another partner (agency-b's certificate).
    request_id = uuid.uuid4().hex
    proof = followup.followup_proof(hit.followup_key, "agency-a", hit.reference, request_id)
    request = pb.FollowUpRequest(reference=hit.reference, purpose="p", case_reference="c", officer="o",
                                 request_id=request_id, proof=proof)
    with grpc.secure_channel(live.target, tls_for(pki_dir, "agency-b").credentials()) as channel, \
            pytest.raises(grpc.RpcError) as copied:
        pb_grpc.MatchingStub(channel).RequestFollowUp(request, timeout=10)
    assert copied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert live.node.followups.all() == []

    mine = a.request_followup(hit, purpose="p", case_reference="c", officer="o")
    other = client_for(live, "agency-b")
    with pytest.raises(RemoteError) as foreign:
        other.followup_status(mine.followup_id)
    assert foreign.value.status == "NOT_FOUND"
    with pytest.raises(RemoteError) as missing_purpose:
        a.request_followup(hit, purpose="", case_reference="c", officer="o")
    assert missing_purpose.value.status == "INVALID_ARGUMENT"


def test_overdue_requests_are_flagged(start_node: Callable[..., LiveNode],
                                      client_for: Callable[..., MatchClient]) -> None:
    live = start_node(LISTS.b)
    a = client_for(live, "agency-a")
    hit = a.match(LISTS.a, purpose="p", case_reference="c").hits[0]
    status = a.request_followup(hit, purpose="p", case_reference="c", officer="o")
    item = live.node.followups.get(status.followup_id)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=49)
    assert item.overdue(later) and item.public(later).overdue
    assert not item.overdue(dt.datetime.now(dt.UTC))
