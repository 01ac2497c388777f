"""Threat: a partner that breaks the BulkMatch exchange. Every step out of place is refused with the status
docs/protocol.md gives, nothing is released before finish, a cut session is audited as broken and the
node keeps serving."""

from __future__ import annotations

import dataclasses
import queue
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from client.api import MatchClient, Traffic
from client.bulk import Aborted, BulkExchange, BulkQuery
from psi import bulk as core
from psi.errors import MalformedMessageError, OutOfOrderError, StaleStateError
from psi.records import Record
from psiwire import matching_pb2 as pb
from tests.conftest import LiveNode
from tests.integration import raw_calls
from tests.integration.hostile.conftest import LISTS, Code, Hostile

MAX_MESSAGE = 64 << 10  # small, so that corrections come in many chunks
AGREEMENTS = f"""
[limits]
max_message_bytes = {MAX_MESSAGE}
idle_seconds = 20

[partners.agency-a]
lists = ["wanted-persons"]
modes = ["intersection", "bulk"]
rate_per_minute = 600
"""
KEYS = [f"key-{n}".encode() for n in range(3000)]  # 3,968 bins: 254 KiB of corrections, several chunks
FINISH = pb.BulkRequest(finish=pb.Finish())


@pytest.fixture
def bulk_hostile(start_node: Callable[..., LiveNode], hostile_pki: Path) -> Hostile:
    return Hostile(start_node(LISTS.b, partners=(), extra=AGREEMENTS), hostile_pki)


class Raw:
    """One BulkMatch call driven by hand: messages go out as the test sends them."""

    def __init__(self, hostile: Hostile, keys: list[bytes] = KEYS, **changes: object) -> None:
        self.receiver = core.BulkReceiver(keys)
        profile = hostile.live.config.profile
        fields = {"list_id": "wanted-persons", "key_epoch": 1, "profile_id": profile.profile_id,
                  "profile_hash": profile.definition_hash, "purpose": "hostile test", "case_reference": "H-1",
                  "request_id": uuid.uuid4().hex, "suite": core.SUITE, "hello": self.receiver.hello()} | changes
        self.start = pb.BulkRequest(start=pb.BulkStart(**fields))  # type: ignore[arg-type]
        self._outbox: queue.SimpleQueue[pb.BulkRequest | None] = queue.SimpleQueue()
        self.call = hostile.stub().BulkMatch(iter(self._outbox.get, None), timeout=60)

    def send(self, *requests: pb.BulkRequest | None) -> None:
        for request in requests:
            self._outbox.put(request)

    def accepted(self) -> pb.BulkAccepted:
        self.send(self.start)
        reply = next(self.call)
        assert reply.WhichOneof("step") == "accepted"
        return reply.accepted

    def corrections(self, accepted: pb.BulkAccepted) -> list[pb.BulkRequest]:
        chunks = self.receiver.corrections(accepted.setup, accepted.max_chunk_bytes)
        return [pb.BulkRequest(correction=pb.BulkCorrection(index=i, data=d)) for i, d in enumerate(chunks)]

    def rest(self) -> list[str]:
        """The steps of the remaining replies; raises the call's refusal."""
        return [reply.WhichOneof("step") for reply in self.call]


def refused(raw: Raw) -> tuple[grpc.StatusCode, str]:
    return raw_calls.refusal(raw.rest)


def entries(hostile: Hostile) -> list[dict[str, Any]]:
    return [b for b in hostile.audit_bodies() if b.get("rpc") == "BulkMatch" or b.get("mode") == "bulk"]


def wait_for_entry(hostile: Hostile, count: int) -> list[dict[str, Any]]:
    """The node's bulk entries once there are `count` (a cut call is noticed by the server a moment later)."""
    deadline = time.monotonic() + 20
    while len(found := entries(hostile)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_a_whole_session_by_hand_releases_results_after_finish(bulk_hostile: Hostile) -> None:
    raw = Raw(bulk_hostile, KEYS[:100] + [r.record_id.encode() for r in LISTS.b])
    accepted = raw.accepted()
    corrections = raw.corrections(accepted)
    assert len(corrections) > 0 and all(c.ByteSize() < MAX_MESSAGE for c in corrections)
    raw.send(*corrections, FINISH, None)
    steps = raw.rest()
    assert steps.count("progress") == len(corrections) and steps[-1] == "done" and "results" in steps
    assert steps.index("results") > max(i for i, s in enumerate(steps) if s == "progress")
    (served,) = entries(bulk_hostile)
    assert served["operation"] == "query.served" and served["end_state"] == "completed"


HELLOS: dict[str, tuple[bytes, Code, str]] = {
    "empty": (b"", Code.INVALID_ARGUMENT, "must carry the receiver's hello"),
    "garbage": (b"\x07" * 57, Code.INVALID_ARGUMENT, "not a bulk hello"),
    "short": (core.BulkReceiver([b"x"]).hello()[:-1], Code.INVALID_ARGUMENT, "not a bulk hello"),
    "no items": (core.BulkReceiver([]).hello(), Code.INVALID_ARGUMENT, "at least 1 item"),
    "over the core's maximum": (bytes([1]) + (core.MAX_ITEMS + 1).to_bytes(8, "little") + bytes(48),
                                Code.INVALID_ARGUMENT, "receiver items"),
}


@pytest.mark.parametrize("case", list(HELLOS))
def test_a_malformed_hello_is_refused_before_admission_and_costs_nothing(bulk_hostile: Hostile, case: str) -> None:
    hello, code, message = HELLOS[case]
    raw = Raw(bulk_hostile, hello=hello)
    raw.send(raw.start, None)
    got, details = refused(raw)
    assert got is code and message in details
    (entry,) = entries(bulk_hostile)
    assert entry["operation"] == "request.refused" and "end_state" not in entry
    assert bulk_hostile.live.node.store.budget_used("agency-a", 1) == 0


def test_an_announcement_over_the_node_limit_is_permission_denied(start_node: Callable[..., LiveNode],
                                                                  hostile_pki: Path) -> None:
    # Sized by bins, not items: 3,000 items fill 3,968 bins, each a test a receiver could make.
    hostile = Hostile(start_node(LISTS.b, partners=(), extra=AGREEMENTS.replace(
        "rate_per_minute = 600", "rate_per_minute = 600\nmax_query_size = 3967")), hostile_pki)
    raw = Raw(hostile)
    raw.send(raw.start, None)
    code, message = refused(raw)
    assert code is Code.PERMISSION_DENIED and f"announces {core.bins(len(KEYS))}" in message


START_CHANGES: dict[str, tuple[dict[str, object], Code, str]] = {
    "wrong suite": ({"suite": "rr22"}, Code.FAILED_PRECONDITION, "bulk suite differs"),
    "stale epoch": ({"key_epoch": 7}, Code.ABORTED, "not the current epoch"),
    "other profile": ({"profile_id": "exact/0"}, Code.FAILED_PRECONDITION, "match profile differs"),
    "no purpose": ({"purpose": " "}, Code.INVALID_ARGUMENT, "purpose"),
    "unknown list": ({"list_id": "other"}, Code.NOT_FOUND, "no list 'other'"),
}


@pytest.mark.parametrize("case", list(START_CHANGES))
def test_a_bad_start_is_refused(bulk_hostile: Hostile, case: str) -> None:
    changes, code, message = START_CHANGES[case]
    raw = Raw(bulk_hostile, **changes)
    raw.send(raw.start, None)
    got, details = refused(raw)
    assert got is code and message in details


def test_a_first_message_that_is_not_the_start_is_refused(bulk_hostile: Hostile) -> None:
    raw = Raw(bulk_hostile)
    raw.send(pb.BulkRequest(correction=pb.BulkCorrection(index=0, data=b"x")), None)
    assert refused(raw) == (Code.FAILED_PRECONDITION, "a bulk session begins with its start")
    raw = Raw(bulk_hostile)
    raw.send(pb.BulkRequest(), None)
    assert refused(raw) == (Code.INVALID_ARGUMENT, "a BulkRequest must hold start, correction or finish")


def _session_refusal(hostile: Hostile, plan: Callable[[Raw, list[pb.BulkRequest]], list[pb.BulkRequest | None]]
                     ) -> tuple[Code, str, list[str]]:
    """Run an accepted session whose later messages `plan` gives; (status, message, steps received)."""
    raw = Raw(hostile)
    corrections = raw.corrections(raw.accepted())
    raw.send(*plan(raw, corrections))
    steps: list[str] = []
    with pytest.raises(grpc.RpcError) as failed:
        for reply in raw.call:
            steps.append(reply.WhichOneof("step"))
    return failed.value.code(), failed.value.details() or "", steps


CORRECTION_CASES: dict[str, tuple[Callable[[Raw, list[pb.BulkRequest]], list[pb.BulkRequest | None]], Code, str]] = {
    "out of order": (lambda r, c: [c[1], c[0], *c[2:], FINISH, None], Code.FAILED_PRECONDITION,
                     "expected correction 0, got correction 1"),
    "repeated": (lambda r, c: [c[0], c[0], None], Code.FAILED_PRECONDITION, "expected correction 1, got correction 0"),
    "too short (finish early)": (lambda r, c: [*c[:-1], FINISH, None], Code.FAILED_PRECONDITION, "finish after"),
    "too long (one chunk more)": (lambda r, c: [*c, pb.BulkRequest(correction=pb.BulkCorrection(
        index=len(c), data=c[-1].correction.data)), FINISH, None], Code.INVALID_ARGUMENT, "goes past"),
    "a chunk over the chunk limit": (lambda r, c: [pb.BulkRequest(correction=pb.BulkCorrection(
        index=0, data=bytes(MAX_MESSAGE - 512))), None], Code.INVALID_ARGUMENT, "the limit is"),
    "empty chunk": (lambda r, c: [pb.BulkRequest(correction=pb.BulkCorrection(index=0)), None],
                    Code.INVALID_ARGUMENT, "correction 0 is empty"),
    "garbage chunk": (lambda r, c: [pb.BulkRequest(correction=pb.BulkCorrection(index=0, data=b"\x09" * 200)), None],
                      Code.INVALID_ARGUMENT, "not a correction chunk"),
    "a second start": (lambda r, c: [c[0], r.start, None], Code.FAILED_PRECONDITION, "already started"),
    "a message after finish": (lambda r, c: [*c, FINISH, c[0], None], Code.FAILED_PRECONDITION,
                               "a message after finish"),
    "finish twice": (lambda r, c: [*c, FINISH, FINISH, None], Code.FAILED_PRECONDITION, "a message after finish"),
    "stream ends before finish": (lambda r, c: [*c, None], Code.FAILED_PRECONDITION, "ended before finish"),
}


@pytest.mark.parametrize("case", list(CORRECTION_CASES))
def test_a_broken_exchange_is_refused_and_releases_nothing(bulk_hostile: Hostile, case: str) -> None:
    plan, code, message = CORRECTION_CASES[case]
    got, details, steps = _session_refusal(bulk_hostile, plan)
    assert got is code and message in details
    assert "results" not in steps and "done" not in steps
    (entry,) = entries(bulk_hostile)
    assert entry["operation"] == "request.refused" and entry["status"] == code.name
    assert entry["end_state"] == ("aborted" if case == "stream ends before finish" else "broken")
    assert bulk_hostile.live.node.store.budget_used("agency-a", 1) == 0


def test_a_message_over_the_message_limit_is_refused_by_the_transport(bulk_hostile: Hostile) -> None:
    raw = Raw(bulk_hostile)
    raw.accepted()
    raw.send(pb.BulkRequest(correction=pb.BulkCorrection(index=0, data=bytes(MAX_MESSAGE + 1))), None)
    assert refused(raw)[0] is Code.RESOURCE_EXHAUSTED
    (entry,) = wait_for_entry(bulk_hostile, 1)
    assert entry["end_state"] == "broken"


def test_a_stream_cut_midway_is_audited_as_broken_and_the_node_keeps_serving(bulk_hostile: Hostile) -> None:
    raw = Raw(bulk_hostile)
    corrections = raw.corrections(raw.accepted())
    raw.send(*corrections[:2])
    assert [next(raw.call).WhichOneof("step") for _ in range(2)] == ["progress", "progress"]
    raw.call.cancel()
    (entry,) = wait_for_entry(bulk_hostile, 1)
    assert (entry["operation"], entry["end_state"], entry["status"]) == ("request.refused", "broken", "CANCELLED")
    assert entry["correction_bytes"] == sum(len(c.correction.data) for c in corrections[:2])
    assert bulk_hostile.live.node.store.budget_used("agency-a", 1) == 0
    with MatchClient(bulk_hostile.live.target, bulk_hostile.tls(), partner="agency-b") as client:
        result = client.bulk_match(LISTS.a, purpose="p", case_reference="c")  # started again: it works
        assert result.hits == client.match(LISTS.a, purpose="p", case_reference="c").hits




def test_a_client_that_aborts_is_logged_as_aborted_on_both_sides(bulk_hostile: Hostile) -> None:
    sent: list[int] = []

    def abort() -> bool:
        sent.append(1)
        return len(sent) > 3  # after the start and two corrections

    sink = raw_calls.AuditSink()
    with MatchClient(bulk_hostile.live.target, bulk_hostile.tls(), partner="agency-b") as client, \
            pytest.raises(Aborted):
        client.bulk_match(_many_records(), purpose="p", case_reference="c", audit=sink, abort=abort)
    (made,) = sink.bodies
    assert (made["end_state"], made["outcome"]) == ("aborted", "refused") and made["session_id"]
    (entry,) = wait_for_entry(bulk_hostile, 1)
    assert entry["end_state"] == "aborted" and entry["session_id"] == made["session_id"]


def _many_records() -> list[Record]:
    """Records with enough keys for several correction chunks under the small message limit."""
    return [dataclasses.replace(r, record_id=f"{r.record_id}-{n}", name=f"{r.name} {n}")
            for n in range(40) for r in LISTS.a]


def test_bulk_is_not_a_mode_of_evaluate_or_stream_tags(bulk_hostile: Hostile) -> None:
    stub = bulk_hostile.stub()
    start = raw_calls.start(bulk_hostile.live.config.profile, 1, mode=pb.MODE_BULK)
    code, message = raw_calls.refusal(lambda: list(stub.Evaluate(iter([start]))))
    assert code is Code.INVALID_ARGUMENT and "mode must be" in message
    code, _ = raw_calls.refusal(lambda: list(stub.StreamTags(pb.StreamTagsRequest(mode=pb.MODE_BULK, key_epoch=1))))
    assert code is Code.INVALID_ARGUMENT


def test_concurrent_bulk_sessions_count_against_the_agreement(start_node: Callable[..., LiveNode],
                                                              hostile_pki: Path) -> None:
    hostile = Hostile(start_node(LISTS.b, partners=(), extra=AGREEMENTS.replace(
        "rate_per_minute = 600", "rate_per_minute = 600\nmax_sessions = 1")), hostile_pki)
    first = Raw(hostile)
    first.accepted()  # held open
    second = Raw(hostile)
    second.send(second.start, None)
    code, message = refused(second)
    assert code is Code.RESOURCE_EXHAUSTED and "1 concurrent sessions are allowed" in message
    first.call.cancel()
    wait_for_entry(hostile, 2)
    assert hostile.live.node.store.budget_used("agency-a", 1) == 0


class _FakeCall:
    """A BulkMatch call whose replies a hostile server chose."""

    def __init__(self, replies: list[pb.BulkResponse]) -> None:
        self._replies = iter(replies)

    def __next__(self) -> pb.BulkResponse:
        return next(self._replies)

    def __iter__(self) -> _FakeCall:
        return self

    def cancel(self) -> bool:
        return True

    def add_done_callback(self, callback: Callable[[object], None]) -> None:
        callback(self)


class _FakeStub:
    def __init__(self, replies: list[pb.BulkResponse]) -> None:
        self.replies = replies

    def BulkMatch(self, requests: object, timeout: float) -> _FakeCall:
        del requests, timeout
        return _FakeCall(self.replies)


def _query_for(hostile: Hostile) -> BulkQuery:
    with MatchClient(hostile.live.target, hostile.tls(), partner="agency-b") as client:
        params = client.parameters()
    return BulkQuery(params, hostile.live.config.profile, LISTS.a, purpose="p", case_reference="c", request_id="r")


def _accepted(epoch: int = 1) -> pb.BulkResponse:
    return pb.BulkResponse(accepted=pb.BulkAccepted(session_id="s", key_epoch=epoch, setup=b"\x02",
                                                    correction_bytes=64, result_count=0, max_chunk_bytes=4096))


HOSTILE_SERVERS: dict[str, tuple[list[pb.BulkResponse], type[Exception], str]] = {
    "progress before accepted": ([pb.BulkResponse(progress=pb.Progress(received=1, total=2))], OutOfOrderError,
                                 "before it accepted"),
    "another key epoch": ([_accepted(9)], StaleStateError, "key epoch changed"),
    "silence": ([], MalformedMessageError, "ended the bulk session early"),
    "a setup that is not one": ([_accepted()], MalformedMessageError, "not a bulk setup"),
    "an empty reply": ([pb.BulkResponse()], MalformedMessageError, "must hold accepted"),
}


@pytest.mark.parametrize("case", list(HOSTILE_SERVERS))
def test_the_client_refuses_a_hostile_server(bulk_hostile: Hostile, case: str) -> None:
    replies, error, message = HOSTILE_SERVERS[case]
    exchange = BulkExchange(_FakeStub(replies), 30, Traffic(), _query_for(bulk_hostile))  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        exchange.run()
