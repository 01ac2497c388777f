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

import gc
import queue
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from client.errors import remote_error
from psi import bulk_kernels, tags
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
from psi.profiles import Profile, Strength
from psi.records import Record
from psiwire import codec
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total), as client.api's
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


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one bulk match: its per-record and per-hit objects are
    millions of young containers, and each collection they set off walks every live object (the
    caller's records too), which at a million records cost more than the match keys themselves.
    Reference counting still frees what is dropped; the collector runs again afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(slots=True)
class _Found:
    rules: set[str]
    position: int  # of the key that gave `followup_key`, among the record's keys
    followup_key: bytes = field(repr=False)


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
        # Each distinct key once, as an item; for each item, where it came from: (record index, position among
        # the record's keys, rule number) of each record it is in, in flat arrays grouped by item (a list of
        # tuples per key would cost hundreds of megabytes at a million records).
        self._rule_ids = [r.rule_id for r in profile.rules]
        rule_number = {rule: n for n, rule in enumerate(self._rule_ids)}
        item_of: dict[bytes, int] = {}
        items, holders, positions, rules = array("I"), array("I"), array("I"), array("I")
        for index, record in enumerate(self.records):
            for position, key in enumerate(profile.match_keys(record)):
                items.append(item_of.setdefault(key.value, len(item_of)))
                holders.append(index)
                positions.append(position)
                rules.append(rule_number[key.rule_id])
        self._items = len(item_of)
        order = np.argsort(np.frombuffer(items, np.uint32), kind="stable")
        self._holders, self._positions, self._rules = (array("I", np.frombuffer(a, np.uint32)[order].tobytes())
                                                       for a in (holders, positions, rules))
        counts = np.bincount(np.frombuffer(items, np.uint32), minlength=self._items)
        self._starts = array("Q", np.concatenate(([0], np.cumsum(counts))).astype(np.uint64).tobytes())
        del items, holders, positions, rules
        self._kernels = bulk_kernels.kernels()
        # The receiver keeps its digests of the keys only: the key values go once it is built.
        self._receiver = BulkReceiver(list(item_of), rng=rng, kernels=self._kernels)  # no keys: never started
        del item_of
        self._found: dict[tuple[str, str, str], _Found] = {}
        self._next_result = 0
        self.correction_bytes = 0  # sent
        self.result_bytes = 0  # received
        self.opened = 0  # the receiver's hits, before their labels are opened

    def __repr__(self) -> str:
        return f"BulkQuery(records={len(self.records)}, items={self._items})"

    @property
    def items(self) -> int:
        """Distinct match keys: what the hello announces and the partner's budget counts."""
        return self._items

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
        hits = self._receiver.open(chunk.data)
        if not hits:
            return
        self.opened += len(hits)
        if any(len(payload) <= bulk_kernels.LABEL_KEY_BYTES for _, payload in hits):
            raise MalformedMessageError("a bulk payload holds a label key and a sealed label")
        # Each label opened and its follow-up key derived in one batch (native: in parallel, GIL released).
        for (item, _), opened in zip(hits, self._kernels.open_labels([p for _, p in hits]), strict=True):
            if opened is not None:  # else a truncated-tag collision, not a hit (as in intersection mode)
                self._hit(item, *opened)

    def _hit(self, item: int, plain: bytes, followup_key: bytes) -> None:
        reference, category = tags.decode_label(plain)
        for k in range(self._starts[item], self._starts[item + 1]):
            slot = (self.records[self._holders[k]].record_id, reference, category)
            position, rule_id = self._positions[k], self._rule_ids[self._rules[k]]
            found = self._found.get(slot)
            if found is None:
                self._found[slot] = _Found({rule_id}, position, followup_key)
                continue
            found.rules.add(rule_id)
            if position < found.position:  # the follow-up key of the record's first key that hit
                found.position, found.followup_key = position, followup_key

    def result(self) -> MatchResult:
        """Every hit, once the partner's results are all in (the receiver checks they are)."""
        if self._receiver is not None:
            self._receiver.finish()
        hits = []
        strength_of = {r.rule_id: r.strength for r in self.profile.rules}
        outcomes: dict[frozenset[str], tuple[tuple[str, ...], Strength]] = {}  # a few sets of rules recur
        for (record_id, reference, category), found in self._found.items():
            rule_set = frozenset(found.rules)
            outcome = outcomes.get(rule_set)
            if outcome is None:
                rules = tuple(r for r in strength_of if r in rule_set)  # in the profile's order
                outcome = outcomes[rule_set] = (rules, min((strength_of[r] for r in rules),
                                                            key=_STRENGTH_ORDER.__getitem__))
            hits.append(Hit(record_id, reference, category, *outcome, found.followup_key))
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
