"""Threat: out-of-protocol messages. Hand-made and generated sequences never reach an unchecked state.

Hypothesis drives the server's session state machine with any order of starts, batches and
finishes, and feeds the codec arbitrary bytes and field values; both are bounded (a few
seconds in `make test`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import hypothesis.strategies as st
import pytest
import rbcl
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cli.main import main
from client.api import MatchClient
from demo.synthetic import make_lists
from psi import oprf
from psi.errors import MalformedMessageError, PsiError
from psi.executor import INLINE
from psi.messages import BlindedBatch, Finish, Limits, Mode, SessionStart
from psi.server_session import ServerSession, run_evaluation
from psiwire import codec
from psiwire import matching_pb2 as pb
from tests.conftest import LiveNode
from tests.integration.hostile.conftest import LISTS, Hostile
from tests.protocol_helpers import parameters_for, snapshot_for

KEY = oprf.generate_key()
LIMITS = Limits(max_batch_size=4, max_query_size=64)
PARAMS = parameters_for(snapshot_for(KEY, make_lists(4, 6, 2, seed=9).b, limits=LIMITS), 6, limits=LIMITS)
ELEMENT = rbcl.crypto_core_ristretto255_random()
BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class SessionMachine(RuleBasedStateMachine):
    """A model of what the session must accept; any other step must be refused with a PsiError, changing nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.session = ServerSession(KEY, PARAMS, "s")
        self.total = 0  # announced; 0 before an accepted start
        self.next_index = 0
        self.received = 0
        self.done = False

    def _refused(self, step: Callable[[], object]) -> None:
        before = (self.session.received, self.session.done)
        with pytest.raises(PsiError):
            step()
        assert (self.session.received, self.session.done) == before

    @rule(total=st.integers(0, 80), epoch=st.sampled_from([PARAMS.key_epoch, PARAMS.key_epoch + 1]),
          purpose=st.sampled_from(["", "  ", "an investigation"]))
    def start(self, total: int, epoch: int, purpose: str) -> None:
        msg = SessionStart("wanted-persons", Mode.INTERSECTION, epoch, PARAMS.profile_id, PARAMS.profile_hash,
                           total, 0, purpose, "CASE-1", request_id="r")
        if self.total or self.done or total < 1 or epoch != PARAMS.key_epoch or not purpose.strip():
            self._refused(lambda: self.session.start(msg))
            return
        self.session.start(msg)
        self.total = total

    @rule(index_shift=st.integers(-1, 1), count=st.integers(0, 6), spoil=st.sampled_from(["", "short", "identity"]))
    def batch(self, index_shift: int, count: int, spoil: str) -> None:
        elements = ELEMENT * count
        if spoil == "short" and elements:
            elements = elements[:-1]
        elif spoil == "identity" and elements:
            elements = bytes(32) + elements[32:]
        msg = BlindedBatch(self.next_index + index_shift, elements)
        valid_shape = (not self.done and self.total and index_shift == 0 and 0 < count <= LIMITS.max_batch_size
                       and self.received + count <= self.total and spoil != "short")
        if not valid_shape:
            self._refused(lambda: self.session.batch(msg))
            return
        job = self.session.batch(msg)
        try:
            evaluated = run_evaluation(job, INLINE)
        except MalformedMessageError:  # the identity element is found when evaluated: the session ends
            assert spoil == "identity"
            self.done = True
            return
        self.session.evaluated(job, evaluated)
        self.next_index += 1
        self.received += count

    @rule()
    def finish(self) -> None:
        if self.done or not self.total or self.received != self.total:
            self._refused(lambda: self.session.finish(Finish()))
            return
        self.session.finish(Finish())
        self.done = True

    @precondition(lambda self: self.done)
    @rule()
    def nothing_after_the_end(self) -> None:
        self._refused(lambda: self.session.batch(BlindedBatch(self.next_index, ELEMENT)))

    @invariant()
    def counts_agree(self) -> None:
        assert self.session.received == self.received


TestSessionMachine = SessionMachine.TestCase
TestSessionMachine.settings = settings(max_examples=80, stateful_step_count=12, deadline=None)


@BOUNDED
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_to_a_message_or_a_protocol_error(data: bytes) -> None:
    for decode, message in ((codec.client_message_from_pb, pb.EvaluateRequest),
                            (codec.followup_request_from_pb, pb.FollowUpRequest),
                            (codec.list_id_from_pb, pb.StreamTagsRequest),
                            (codec.followup_id_from_pb, pb.GetFollowUpRequest)):
        try:
            parsed = message.FromString(data)
        except DecodeError:
            continue  # gRPC refuses what protobuf cannot parse, before any handler
        with contextlib.suppress(MalformedMessageError):
            decode(parsed)  # type: ignore[operator]


@BOUNDED
@given(text=st.text(max_size=700), blob=st.binary(max_size=100), mode=st.integers(-3, 5))
def test_decoded_fields_are_capped_or_refused(text: str, blob: bytes, mode: int) -> None:
    start = pb.EvaluateRequest(start=pb.SessionStart(list_id=text, mode=mode, profile_id=text, profile_hash=blob,
                                                     purpose=text, case_reference=text, operator=text,
                                                     request_id=text))
    try:
        decoded = codec.client_message_from_pb(start)
    except MalformedMessageError as exc:
        assert text not in str(exc) or len(text) < 8  # a refusal names the field, not the content
        return
    assert isinstance(decoded, SessionStart)
    assert max(len(decoded.purpose), len(decoded.list_id), len(decoded.request_id)) <= 128
    assert len(decoded.profile_hash) <= 64


def test_two_officers_deciding_at_once_through_the_cli_have_one_winner(
        hostile: Hostile, capsys: pytest.CaptureFixture[str]) -> None:
    with MatchClient(hostile.live.target, hostile.tls(), partner="agency-b") as client:
        hit = client.match(LISTS.a, purpose="p", case_reference="c").hits[0]
        followup_id = client.request_followup(hit, purpose="p", case_reference="c", officer="o").followup_id
    config = str(_config_path(hostile.live))
    argv = (["followup", "approve", followup_id, "--fields", "name", "--config", config, "--officer", "one"],
            ["followup", "deny", followup_id, "--reason", "no", "--config", config, "--officer", "two"])
    codes: list[int] = []
    threads = [threading.Thread(target=lambda a=a: codes.append(main(a))) for a in argv]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(codes) == [0, 2]
    assert "was already" in " ".join(capsys.readouterr().err.split())
    decided = [b for b in hostile.audit_bodies() if b["operation"] in ("followup.approved", "followup.denied")
               and b.get("phase") != "intent" and b["outcome"] == "ok"]
    assert len(decided) == 1
    assert hostile.live.node.followups.get(followup_id).decided_by in ("one", "two")


def _config_path(live: LiveNode) -> Path:
    return live.config.data_dir.parent / f"{live.config.node_id}.toml"
