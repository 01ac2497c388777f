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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np

from client.errors import remote_error
from client.record_keys import record_keys
from psi import bulk_kernels, followup
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
        # Every record's keys, and where each came from; the receiver makes equal keys one item and gives a
        # hit back for each copy.
        self._rule_ids = [r.rule_id for r in profile.rules]
        keys = record_keys(profile, self.records)
        self._holders, self._positions, self._rules = keys.holders, keys.positions, keys.rules
        self._kernels = bulk_kernels.kernels()
        # The receiver keeps its digests of the keys only: the key values go once it is built.
        self._receiver = BulkReceiver(keys.values, rng=rng, kernels=self._kernels)
        del keys
        # Per result chunk, for its opened hits: their keys (indexes into the flat arrays), their labels' numbers
        # and their follow-up keys' places among all payloads' (`_followup_keys`, 32 bytes each, back to back).
        self._hit_keys: list[np.ndarray] = []
        self._hit_labels: list[np.ndarray] = []
        self._hit_followups: list[np.ndarray] = []
        self._followup_keys: list[bytes] = []  # per result chunk: its payloads' follow-up keys
        self._payloads = 0  # payloads opened so far: the first place of the next chunk's follow-up keys
        self._labels = self._kernels.label_book()
        self._next_result = 0
        self.correction_bytes = 0  # sent
        self.result_bytes = 0  # received
        self.opened = 0  # the receiver's hits, before their labels are opened

    def __repr__(self) -> str:
        return f"BulkQuery(records={len(self.records)}, items={self.items})"

    @property
    def items(self) -> int:
        """Distinct match keys: what the hello announces and the partner's budget counts."""
        return self._receiver.items

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

    def build_index(self) -> None:
        """Prepare for the results once the corrections are sent (else the first result does it)."""
        self._receiver.build_index()

    def receive(self, chunk: BulkChunk) -> None:
        """One result chunk, in order: the hits it opens become hits of records."""
        if chunk.index != self._next_result:
            raise OutOfOrderError(f"expected result chunk {self._next_result}, got {chunk.index}")
        self._next_result += 1
        self.result_bytes += len(chunk.data)
        hits = self._receiver.open(chunk.data)
        if not len(hits):
            return
        self.opened += len(hits)
        if int(np.frombuffer(hits.lengths, "<u4").min()) <= bulk_kernels.LABEL_KEY_BYTES:
            raise MalformedMessageError("a bulk payload holds a label key and a sealed label")
        # Each payload's label opened, numbered, and its follow-up key derived in one batch (native: in parallel,
        # GIL released); which records each hit belongs to is worked out once, in `result`.
        numbers, followup_keys = self._labels.open(hits.data, hits.lengths)
        label = np.frombuffer(numbers, "<u4")[hits.payloads]
        kept = label != bulk_kernels.NOT_OPENED  # else a truncated-tag collision, not a hit (as in intersection mode)
        self._hit_keys.append(hits.keys[kept])
        self._hit_labels.append(label[kept])
        self._hit_followups.append(self._payloads + hits.payloads[kept])
        self._followup_keys.append(followup_keys)
        self._payloads += len(numbers) // 4

    def result(self) -> MatchResult:
        """Every hit, once the partner's results are all in (the receiver checks they are).

        A hit of an item is a hit of each record key it came from; the keys of one record that hit one
        partner record make one `Hit`, with the union of their rules and the follow-up key of the first
        of them in the record's key order, as intersection mode gives.
        """
        self._receiver.finish()
        references, categories = self._labels.decoded()
        record_ids, (records, labels, masks, followups) = self._hit_rows(references)
        strength_of = {r.rule_id: r.strength for r in self.profile.rules}
        rules: dict[int, tuple[str, ...]] = {}  # of a mask over the profile's rules: a few recur
        strengths = {}
        hit_masks = masks.tolist()
        for mask in set(hit_masks):
            rules[mask] = tuple(r for n, r in enumerate(self._rule_ids) if mask >> n & 1)  # in the profile's order
            strengths[mask] = min((strength_of[r] for r in rules[mask]), key=_STRENGTH_ORDER.__getitem__)
        # Void items: bytes, their zero bytes kept.
        keys = np.frombuffer(b"".join(self._followup_keys), f"V{followup.FOLLOWUP_KEY_BYTES}")
        found = Hit.from_columns(record_ids[records].tolist(), _objects(references)[labels].tolist(),
                                 _objects(categories)[labels].tolist(), list(map(rules.__getitem__, hit_masks)),
                                 list(map(strengths.__getitem__, hit_masks)), keys[followups].tolist())
        return MatchResult(Mode.BULK, len(self.records), self.items, len(record_ids), found)

    def _hit_rows(self, references: list[str]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The ids of the records that hit, sorted, and one row per (record, partner label) that hit, in the
        order of (record id, reference): the record's place among those ids, the label's number,
        the rules that hit as a bit mask over the profile's rules, and the place of its follow-up key."""
        k = _joined(self._hit_keys)
        holder = np.frombuffer(self._holders, np.uint32)[k]
        position = np.frombuffer(self._positions, np.uint32)[k]
        rule = np.frombuffer(self._rules, np.uint32)[k].astype(np.int64)
        label, hit = _joined(self._hit_labels), _joined(self._hit_followups)
        holders, holder_rank = np.unique(holder, return_inverse=True)
        record_ids, id_rank = _ranks([self.records[i].record_id for i in holders.tolist()])
        record = id_rank[holder_rank]  # records that share an id are one, as in intersection mode
        # The follow-up key of the first key that hit, in (record, key) order, as intersection mode reads them.
        order = np.lexsort((_pairs(holder, position), _pairs(record, label)))
        record, label, rule, hit = record[order], label[order], rule[order], hit[order]
        heads = np.flatnonzero(_run_starts(record, label))
        masks = np.bitwise_or.reduceat(np.left_shift(1, rule), heads) if len(heads) else rule[:0]
        rows = record[heads], label[heads], masks, hit[heads]
        _order_references(rows, references)
        return record_ids, rows


def _pairs(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """One sort key per row that orders as (high, low) does, both below 2^32: half the sorting passes."""
    return high.astype(np.uint64) << np.uint64(32) | low.astype(np.uint64)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """Per-chunk arrays as one (an empty int64 array for none)."""
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _order_references(rows: tuple[np.ndarray, ...], references: list[str]) -> None:
    """The rows of a record that hit several partner records put in the order of their references, in place
    (rows: record, label, ... grouped by record; most records hit one partner record, so sorting all rows
    by reference would cost more)."""
    records, labels = rows[0], rows[1]
    starts = np.flatnonzero(_run_starts(records))
    ends = np.append(starts[1:], len(records))
    several = ends - starts > 1
    for start, end in zip(starts[several].tolist(), ends[several].tolist(), strict=True):
        keys = [references[label] for label in labels[start:end].tolist()]
        by_reference = start + np.array(sorted(range(end - start), key=keys.__getitem__))
        for column in rows:
            column[start:end] = column[by_reference]


def _run_starts(*columns: np.ndarray) -> np.ndarray:
    """Where a run of equal rows begins, over sorted columns of one length."""
    starts = np.zeros(len(columns[0]), bool)
    starts[:1] = True
    for column in columns:
        starts[1:] |= column[1:] != column[:-1]
    return starts


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A one-dimensional array of the values as they are (strings, bytes: never split or converted)."""
    out = np.empty(len(values), object)
    out[:] = values
    return out


def _ranks(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, sorted, and each value's place among them."""
    ordered = _objects(values)
    if bool((ordered[1:] > ordered[:-1]).all()):  # distinct and in order already, as sorted records' ids come
        return ordered, np.arange(len(values))
    order = np.array(sorted(range(len(values)), key=values.__getitem__), np.int64)
    ordered = ordered[order]
    starts = _run_starts(ordered)
    ranks = np.empty(len(values), np.int64)
    ranks[order] = np.cumsum(starts) - 1
    return ordered[starts], ranks


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
            self._query.build_index()  # while the partner computes its results
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
