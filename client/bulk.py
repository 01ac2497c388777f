"""The querying side of bulk mode: the BulkMatch exchange around `psi.bulk.BulkReceiver`, and `--mode auto`.

`BulkQuery` turns records into the receiver's items (each distinct match key once, remembering
which records and rules it came from) and each hit the receiver opens (the item, and the server
entry's payload `label_key ‖ sealed_label`) into the same `Hit` as intersection mode: the label
opened with the label key gives the reference and category, the rules and strength come from the
record's keys that hit, and the follow-up key is derived from the label key of the record's first
key (in the profile's rule order) that hit, as intersection mode does. `BulkExchange` runs one
BulkMatch call (docs/protocol.md, "BulkMatch"): start, corrections a few ahead of the server's
progress replies, finish (the last message: the request stream is then closed), results, done.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from client.errors import remote_error
from psi import followup, tags
from psi.bulk import SUITE, BulkReceiver
from psi.client_query import _STRENGTH_ORDER, Hit, MatchResult, check_version_and_profile
from psi.errors import MalformedMessageError, OutOfOrderError, ParameterMismatchError, StaleStateError
from psi.messages import (
    BulkAccepted,
    BulkChunk,
    BulkClientMessage,
    BulkServerMessage,
    BulkStart,
    Done,
    Finish,
    Mode,
    Parameters,
    Progress,
)
from psi.profiles import Profile
from psi.records import Record
from psiwire import codec
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total), as client.api's
LABEL_KEY_BYTES = 32  # a payload is label_key ‖ sealed_label
_IN_FLIGHT = 8  # corrections sent ahead of the server's progress replies
_ABORT_WAIT_SECONDS = 5.0  # after an abort: how long the server may take to end the call before it is cancelled

# `psi match --mode auto` (docs/protocol.md, "Choosing a mode"): bulk mode when both lists are at least
# this large and no tag cache of this partner's list is warm for its key epoch.
AUTO_MIN_CLIENT_RECORDS = 50_000
AUTO_MIN_SERVER_RECORDS = 50_000


def choose_mode(records: int, params: Parameters, warm_tags: bool) -> tuple[Mode, str]:
    """The mode `--mode auto` takes for `records` local records against the partner's `params`, and why."""
    if not params.bulk_suite:
        return Mode.INTERSECTION, "the partner does not offer bulk mode"
    if warm_tags:
        return Mode.INTERSECTION, (f"a tag cache of the partner's list is warm for key epoch {params.key_epoch}: "
                                   "intersection mode fetches only the changes")
    if records < AUTO_MIN_CLIENT_RECORDS or params.list_size < AUTO_MIN_SERVER_RECORDS:
        return Mode.INTERSECTION, (f"{records} records here and {params.list_size} on the partner's list: bulk mode "
                                   f"pays only when both hold at least {AUTO_MIN_CLIENT_RECORDS:,}")
    return Mode.BULK, (f"{records} records here and {params.list_size} on the partner's list, and no tag cache "
                       f"for key epoch {params.key_epoch}")


def check_bulk_parameters(params: Parameters, profile: Profile, suite: str) -> None:
    """Refuse a partner whose protocol version, profile or bulk suite differ from ours."""
    check_version_and_profile(params, profile)
    if params.bulk_suite != suite:
        offered = f"bulk suite '{params.bulk_suite}'" if params.bulk_suite else "no bulk mode"
        raise ParameterMismatchError(f"the partner offers {offered}; this client speaks '{suite}'")


@dataclass
class _Found:
    rules: set[str]
    position: int  # of the key that gave `label_key`, among the record's keys
    label_key: bytes = field(repr=False)


class BulkQuery:
    """Which of my records are on the partner's list, by bulk mode; the result is intersection mode's."""

    mode = Mode.BULK

    def __init__(self, params: Parameters, profile: Profile, records: Sequence[Record], *, purpose: str,
                 case_reference: str, operator: str = "", request_id: str,
                 rng: Callable[[int], bytes] | None = None) -> None:
        check_bulk_parameters(params, profile, SUITE)
        self.params = params
        self.profile = profile
        self.records = list(records)
        self.request_id = request_id
        self._purpose, self._case_reference, self._operator = purpose, case_reference, operator
        # Each distinct key once: (record index, position among the record's keys, rule) of each record it is in.
        self._owners: dict[bytes, list[tuple[int, int, str]]] = {}
        for index, record in enumerate(self.records):
            for position, key in enumerate(profile.match_keys(record)):
                self._owners.setdefault(key.value, []).append((index, position, key.rule_id))
        self._keys = list(self._owners)
        self._receiver = BulkReceiver(self._keys, rng=rng)  # no keys: the client never starts a call
        self._found: dict[tuple[str, str, str], _Found] = {}
        self._next_result = 0
        self.correction_bytes = 0  # sent
        self.result_bytes = 0  # received
        self.opened = 0  # the receiver's hits, before their labels are opened

    def __repr__(self) -> str:
        return f"BulkQuery(records={len(self.records)}, items={len(self._keys)})"

    @property
    def items(self) -> int:
        """Distinct match keys: what the hello announces and the partner's budget counts."""
        return len(self._keys)

    def start_message(self) -> BulkStart:
        p = self.params
        return BulkStart(p.list_id, p.key_epoch, self.profile.profile_id, self.profile.definition_hash,
                         self._purpose, self._case_reference, self._operator, self.request_id, p.bulk_suite,
                         self._receiver.hello())

    def corrections(self, accepted: BulkAccepted) -> Iterator[BulkChunk]:
        """The correction chunks for the server's setup, each within the chunk size it accepts."""
        if accepted.max_chunk_bytes < 1:
            raise MalformedMessageError("the partner accepts no correction chunk size")
        sent = 0
        for index, data in enumerate(self._receiver.corrections(accepted.setup, accepted.max_chunk_bytes)):
            if index == 0 and int(self._receiver.correction_bytes) != accepted.correction_bytes:
                raise MalformedMessageError(f"the partner expects {accepted.correction_bytes} correction bytes; "
                                            f"its setup makes {self._receiver.correction_bytes}")
            sent += len(data)
            yield BulkChunk(index, data)
        self.correction_bytes = sent

    def receive(self, chunk: BulkChunk) -> None:
        """One result chunk, in order: the hits it opens become hits of records."""
        if chunk.index != self._next_result:
            raise OutOfOrderError(f"expected result chunk {self._next_result}, got {chunk.index}")
        self._next_result += 1
        self.result_bytes += len(chunk.data)
        for item, payload in self._receiver.open(chunk.data):
            self.opened += 1
            self._hit(self._keys[item], payload)

    def _hit(self, key: bytes, payload: bytes) -> None:
        if len(payload) <= LABEL_KEY_BYTES:
            raise MalformedMessageError("a bulk payload holds a label key and a sealed label")
        label_key, sealed = payload[:LABEL_KEY_BYTES], payload[LABEL_KEY_BYTES:]
        plain = tags.open_label(label_key, sealed)
        if plain is None:
            return  # a truncated-tag collision, not a hit (as in intersection mode)
        reference, category = tags.decode_label(plain)
        for record_index, position, rule_id in self._owners[key]:
            slot = (self.records[record_index].record_id, reference, category)
            found = self._found.get(slot)
            if found is None:
                self._found[slot] = _Found({rule_id}, position, label_key)
                continue
            found.rules.add(rule_id)
            if position < found.position:  # the follow-up key of the record's first key that hit
                found.position, found.label_key = position, label_key

    def result(self) -> MatchResult:
        """Every hit, once the partner's results are all in (the receiver checks they are)."""
        if self._receiver is not None:
            self._receiver.finish()
        hits = []
        for (record_id, reference, category), found in self._found.items():
            rules = tuple(r.rule_id for r in self.profile.rules if r.rule_id in found.rules)
            strength = min((self.profile.rule(r).strength for r in rules), key=_STRENGTH_ORDER.__getitem__)
            hits.append(Hit(record_id, reference, category, rules, strength, followup.followup_key(found.label_key)))
        hits.sort(key=lambda h: (h.record_id, h.reference))
        return MatchResult(Mode.BULK, len(self.records), self.items, len({h.record_id for h in hits}), tuple(hits))


class Aborted(Exception):  # noqa: N818 (a request, not an error)
    """Raised by a caller's `abort` check to end a bulk session early (audited as aborted)."""


class BulkExchange:
    """One BulkMatch call, driven from the thread that calls `run`; gRPC's sending thread reads a queue."""

    def __init__(self, stub: pb_grpc.MatchingStub, timeout: float, traffic: Any, query: BulkQuery,
                 progress: ProgressCallback | None = None, abort: Callable[[], bool] = lambda: False) -> None:
        self._query = query
        self._progress = progress
        self._traffic = traffic
        self._abort = abort
        self.session_id = ""
        self.accepted = False  # the partner accepted the session: a failure from here breaks it
        self._results = 0
        self._outbox: queue.SimpleQueue[pb.BulkRequest | None] = queue.SimpleQueue()
        self._call = stub.BulkMatch(self._requests(), timeout=timeout)

    def _requests(self) -> Iterator[pb.BulkRequest]:
        while (request := self._outbox.get()) is not None:
            yield request

    def _send(self, msg: BulkClientMessage) -> None:
        if self._abort():
            raise Aborted("the bulk session was aborted")
        request = codec.bulk_client_message_to_pb(msg)
        self._traffic.sent += request.ByteSize()
        self._outbox.put(request)

    def run(self) -> str:
        """The session id, once the partner sent its results and done."""
        try:
            self._send(self._query.start_message())
            accepted = self._take()
            if not isinstance(accepted, BulkAccepted):
                raise OutOfOrderError("the partner did not accept the bulk session first")
            owed = 0  # progress replies: one per correction
            for chunk in self._query.corrections(accepted):
                self._send(chunk)
                owed += 1
                while owed > _IN_FLIGHT:
                    self._take()
                    owed -= 1
            self._send(Finish())
            self._outbox.put(None)  # finish is the last message: the stream ends here
            while not isinstance(last := self._take(), Done):
                pass
            if last.evaluated != self._query.items:
                raise MalformedMessageError(f"the partner evaluated {last.evaluated} items, not {self._query.items}")
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        except (Aborted, KeyboardInterrupt):
            self._end_gently()
            raise
        finally:
            self._outbox.put(None)  # ends the request stream if an error left it open
            self._call.cancel()  # nothing once the call has completed
        return self.session_id

    def _end_gently(self) -> None:
        """Close our stream before finish, so the partner logs the session as aborted, then stop waiting."""
        self._outbox.put(None)
        ended = threading.Event()
        self._call.add_done_callback(lambda _: ended.set())
        ended.wait(_ABORT_WAIT_SECONDS)

    def _take(self) -> BulkServerMessage:
        reply = next(self._call, None)
        if reply is None:
            raise MalformedMessageError("the partner ended the bulk session early")
        self._traffic.received += reply.ByteSize()
        msg = codec.bulk_server_message_from_pb(reply)
        query, progress = self._query, self._progress
        if isinstance(msg, BulkAccepted):
            if self.accepted:
                raise OutOfOrderError("the partner accepted the session twice")
            if msg.key_epoch != query.params.key_epoch:
                raise StaleStateError("the partner's key epoch changed; match again")
            self.accepted, self.session_id = True, msg.session_id
        elif not self.accepted:
            raise OutOfOrderError("the partner answered before it accepted the session")
        elif isinstance(msg, Progress):
            if progress:
                progress("bulk", msg.received, msg.total)
        elif isinstance(msg, BulkChunk):
            query.receive(msg)
            self._results += 1
            if progress:
                progress("results", self._results, self._results)
        return msg
