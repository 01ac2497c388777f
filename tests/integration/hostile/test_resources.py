"""Threat: exhaustion. Every text field is capped when decoded, refusals cost rate, tags fit any list."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from client.api import MatchClient
from demo.synthetic import make_lists
from psi.errors import RecordError
from psi.messages import MAX_ID_CHARS, MAX_NOTE_CHARS, MAX_TEXT_CHARS
from psi.records import MAX_FIELD_CHARS, Record
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from tests.conftest import LiveNode
from tests.integration.hostile.conftest import LISTS, Code, Hostile, refusal

HUGE = "x" * (1 << 20)  # 1 MB: fits the 4 MiB message limit, so only the caps refuse it

CAPPED: dict[str, tuple[str, Callable[[Hostile, pb_grpc.MatchingStub], object]]] = {
    **{f"SessionStart.{field}": (f"{field.replace('_', ' ')} is longer than {limit} characters",
                                 lambda h, s, f=field: list(s.Evaluate(iter([h.start(1, **{f: HUGE})]))))
       for field, limit in (("purpose", MAX_TEXT_CHARS), ("case_reference", MAX_TEXT_CHARS),
                            ("operator", MAX_TEXT_CHARS), ("request_id", MAX_ID_CHARS),
                            ("list_id", MAX_ID_CHARS), ("profile_id", MAX_ID_CHARS))},
    "SessionStart.profile_hash": ("profile hash is longer than 64 bytes",
                                  lambda h, s: list(s.Evaluate(iter([h.start(1, profile_hash=HUGE.encode())])))),
    "GetParameters.list_id": (f"list id is longer than {MAX_ID_CHARS} characters",
                              lambda h, s: s.GetParameters(pb.GetParametersRequest(list_id=HUGE))),
    "StreamTags.list_id": (f"list id is longer than {MAX_ID_CHARS} characters", lambda h, s: list(
        s.StreamTags(pb.StreamTagsRequest(list_id=HUGE, mode=pb.MODE_INTERSECTION, key_epoch=1)))),
    **{f"FollowUpRequest.{field}": (f"{field.replace('_', ' ')} is longer than {limit} characters",
                                    lambda h, s, f=field: s.RequestFollowUp(pb.FollowUpRequest(**{
                                        "reference": "R", "purpose": "p", "case_reference": "c", "officer": "o",
                                        "request_id": "r", f: HUGE})))
       for field, limit in (("reference", MAX_TEXT_CHARS), ("purpose", MAX_TEXT_CHARS),
                            ("case_reference", MAX_TEXT_CHARS), ("officer", MAX_TEXT_CHARS),
                            ("message", MAX_NOTE_CHARS), ("request_id", MAX_ID_CHARS))},
    "GetFollowUp.followup_id": (f"follow-up id is longer than {MAX_ID_CHARS} characters",
                                lambda h, s: s.GetFollowUp(pb.GetFollowUpRequest(followup_id=HUGE))),
}


@pytest.mark.parametrize("field", list(CAPPED))
def test_every_text_field_is_capped_when_decoded(hostile: Hostile, field: str) -> None:
    message, call = CAPPED[field]
    log = hostile.live.config.audit_log_path
    before = log.stat().st_size
    stub = hostile.stub()
    for _ in range(10):
        assert refusal(lambda: call(hostile, stub)) == (Code.INVALID_ARGUMENT, message)
    assert log.stat().st_size - before < 10 * 2048, "a refusal copied the partner's input into the audit log"


def test_every_request_costs_rate_even_when_refused(hostile: Hostile) -> None:
    stub = hostile.stub("eager")  # 3 requests per minute
    calls: list[Callable[[], object]] = [
        lambda: stub.GetParameters(pb.GetParametersRequest(list_id=HUGE)),
        lambda: stub.GetParameters(pb.GetParametersRequest(list_id="another")),
        lambda: stub.GetFollowUp(pb.GetFollowUpRequest(followup_id="unknown")),
    ]
    assert [refusal(call)[0] for call in calls] == [Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.NOT_FOUND]
    for call in (*calls, lambda: stub.GetParameters(pb.GetParametersRequest())):
        code, message = refusal(call)
        assert code is Code.RESOURCE_EXHAUSTED and "3 requests per minute" in message


def test_tag_chunks_fit_the_message_limit_with_maximum_length_references(
        start_node: Callable[..., LiveNode], hostile_pki: Path, tmp_path: Path) -> None:
    longest = [dataclasses.replace(r, reference=r.reference.ljust(MAX_FIELD_CHARS, "#"),
                                   category="=" + "c" * (MAX_FIELD_CHARS - 1)) for r in _many(3200)]
    with pytest.raises(RecordError, match="is longer than 512 characters"):  # the import's cap
        dataclasses.replace(longest[0], reference=longest[0].reference + "#")
    live = start_node(longest, partners=("agency-a",))
    with MatchClient(live.target, Hostile(live, hostile_pki).tls(), partner="agency-b") as client:
        announced = client.parameters()
        # Count-sized chunks (65,536 tags each) would send the whole set in one message over 4 MiB.
        assert announced.tag_count * (MAX_FIELD_CHARS * 2) > 4 << 20
        result = client.match(LISTS.a, purpose="p", case_reference="c")
    refs = {r.record_id: r.reference for r in longest}
    assert {(h.record_id, h.reference) for h in result.hits} == {(a, refs[b]) for a, b in LISTS.overlap}


def _many(n: int) -> list[Record]:
    """LISTS.b (which overlaps LISTS.a) and more persons, `n` in all."""
    extra = make_lists(1, n - len(LISTS.b), 0, seed=73).b
    return [*LISTS.b, *(dataclasses.replace(r, record_id=f"x{r.record_id}") for r in extra)]
