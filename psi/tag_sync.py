"""Tag transfer as a state machine on each side, so every check exists once.

Server: `plan_tags` decides what a `TagRequest` gets (its epoch, list version, offset
and delta eligibility checked here), and `tag_chunks` cuts the answer into TagChunks
whose encoded size stays under a byte bound (labels are variable length: sized for real).
Client: `TagSync` says which request to make next, checks every chunk, resumes a dropped
full transfer from its last offset, falls back to the full set when a change set fails,
and gives the synced set.

On the wire (unchanged): a full transfer's chunk carries the index of its first tag in
`offset`; a change set's chunks (`delta`) carry their sequence number there, and `total`
is the tag count after the change. A change set is applied only once its stream has
ended and the result adds up to `total`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from psi.errors import InputError, MalformedMessageError, OutOfOrderError, PsiError, StaleStateError
from psi.messages import Mode, Parameters, TagChunk
from psi.tags import check_tags_blob
from psi.tagset import Entry, TagSnapshot, apply_delta, entry_costs

Changes = tuple[int, int, Sequence[Entry], Sequence[Entry]]  # (list version, entry count, added, removed)
CHUNK_OVERHEAD = 64  # encoded bytes of a TagChunk besides its tags and labels, at most (8 fields)
MAX_FAILURES = 3  # broken streams a transfer survives


@dataclass(frozen=True)
class TagRequest:
    """What a client asks of StreamTags."""

    mode: Mode
    key_epoch: int
    list_version: int = 0  # 0 to start; the version of the first chunk when resuming
    offset: int = 0  # first tag index wanted
    since_version: int = 0  # > 0: the client holds this version (at `cached_tag_length`) and wants the changes
    cached_tag_length: int = 0


@dataclass(frozen=True)
class TagPlan:
    """What the server sends for one request: the set from `offset`, or the changes since `since_version`."""

    mode: Mode
    offset: int = 0
    since_version: int = 0

    @property
    def delta(self) -> bool:
        return self.since_version > 0


def plan_tags(request: TagRequest, snapshot: TagSnapshot) -> TagPlan:
    """Check a request against the published snapshot and decide what it gets."""
    if request.key_epoch != snapshot.key_epoch:
        raise StaleStateError(f"key epoch {request.key_epoch} is not the current epoch {snapshot.key_epoch}; "
                              "fetch the parameters again")
    if request.list_version and request.list_version != snapshot.list_version:
        raise StaleStateError(f"the list changed (version {request.list_version} -> {snapshot.list_version}); "
                              "restart from offset 0")
    if request.offset > snapshot.count:
        raise InputError(f"offset {request.offset} is past the {snapshot.count} tags")
    if request.offset == 0 and 0 < request.since_version <= snapshot.list_version \
            and request.cached_tag_length == snapshot.tag_length:
        return TagPlan(request.mode, since_version=request.since_version)
    return TagPlan(request.mode, offset=request.offset)  # a client with another version, or none, gets all


def tag_chunks(plan: TagPlan, snapshot: TagSnapshot, changes: Changes | None, max_bytes: int) -> Iterator[TagChunk]:
    """The plan's TagChunks, each under `max_bytes` encoded; at least one, so the client learns version and total.

    `changes` is what the store gives for a delta plan (`Store.changes(epoch, plan.since_version)`),
    None for a full one.
    """
    budget = max_bytes - CHUNK_OVERHEAD
    t = snapshot.tag_length
    labelled = plan.mode is Mode.INTERSECTION
    if not plan.delta:
        blob = snapshot.tags if labelled else snapshot.cardinality_tags
        start = plan.offset
        costs = snapshot.entry_costs[plan.offset:] if labelled else entry_costs(snapshot.count - plan.offset, t, ())
        for stop in _cuts(costs, budget):
            end = plan.offset + stop
            yield TagChunk(snapshot.key_epoch, snapshot.list_version, start, snapshot.count,
                           blob[start * t:end * t], tuple(snapshot.labels[start:end]) if labelled else ())
            start = end
        return
    if changes is None:
        raise ValueError("a delta plan needs the store's changes since its version")
    version, total, added, removed = changes
    pick = 0 if labelled else 2

    def packed(entries: Sequence[Entry]) -> tuple[bytes, tuple[bytes, ...]]:
        ordered = sorted(entries, key=lambda e: e[pick][:t])  # by value: the order says nothing of the list's
        return b"".join(e[pick][:t] for e in ordered), tuple(e[1] for e in ordered) if labelled else ()

    add_tags, add_labels = packed(added)
    rm_tags, rm_labels = packed(removed)
    n = len(added)
    start = 0
    for sequence, stop in enumerate(_cuts(entry_costs(n + len(removed), t, add_labels + rm_labels), budget)):
        a, b, c, d = min(start, n), min(stop, n), max(start - n, 0), max(stop - n, 0)  # additions first
        yield TagChunk(snapshot.key_epoch, version, sequence, total, add_tags[a * t:b * t], add_labels[a:b],
                       True, rm_tags[c * t:d * t], rm_labels[c:d])
        start = stop


def _cuts(costs: np.ndarray, budget: int) -> list[int]:
    """Ends of consecutive runs of entries that fit in `budget` bytes each; one empty run if there are none."""
    ends = np.cumsum(costs)
    cuts: list[int] = []
    start = used = 0
    while start < len(costs):
        stop = int(np.searchsorted(ends, used + budget, side="right"))
        if stop == start:
            raise ValueError(f"an entry of {int(costs[start])} bytes does not fit in a chunk of {budget}")
        cuts.append(stop)
        start, used = stop, int(ends[stop - 1])
    return cuts or [0]


class HeldTags(Protocol):
    """A tag set the client already holds (its cache)."""

    @property
    def key_epoch(self) -> int: ...

    @property
    def list_version(self) -> int: ...

    @property
    def tag_length(self) -> int: ...

    @property
    def tags(self) -> bytes: ...

    @property
    def labels(self) -> Sequence[bytes]: ...


Synced = tuple[bytes, Sequence[bytes], int]  # (tags, labels, list version)


class TagSync:
    """The client's side of bringing its copy of a partner's tag set up to `params`.

    Drive it: while `next_request()` gives a request, stream it, `receive` every chunk, then
    `stream_ended()`; when the stream breaks (or a check fails), `failed(error, resumable=...)`,
    which raises the error when nothing is left to try. Then `result()`.
    """

    def __init__(self, params: Parameters, mode: Mode, held: HeldTags | None = None) -> None:
        self._params = params
        self._mode = mode
        usable = held is not None and (held.key_epoch, held.tag_length) == (params.key_epoch, params.tag_length)
        self._held = held if usable else None  # another epoch's or tag length's tags are of no use
        self._result: Synced | None = None
        if self._held is not None and self._held.list_version == params.list_version:
            self._result = (self._held.tags, self._held.labels, self._held.list_version)
        self._delta = self._held is not None and self._result is None
        self._changes: list[TagChunk] = []
        self._first: TagChunk | None = None  # of the full transfer: its version and total hold for the rest
        self._tags = bytearray()
        self._labels: list[bytes] = []
        self._failures = 0

    def __repr__(self) -> str:
        return f"TagSync(delta={self._delta}, received={self.received}, done={self.done})"

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def received(self) -> int:
        """Tags of the full transfer received so far."""
        return len(self._tags) // self._params.tag_length

    @property
    def progress(self) -> tuple[int, int]:
        """(tags in hand, tags in the set), for a progress bar."""
        if self._result is not None:
            count = len(self._result[0]) // self._params.tag_length
            return count, count
        return self.received, self._first.total if self._first else self._params.tag_count

    def next_request(self) -> TagRequest | None:
        """The request to stream next; None once the set is in hand."""
        p = self._params
        if self._result is not None:
            return None
        if self._held is not None and self._delta:
            return TagRequest(self._mode, p.key_epoch, since_version=self._held.list_version,
                              cached_tag_length=self._held.tag_length)
        return TagRequest(self._mode, p.key_epoch, self._first.list_version if self._first else 0, self.received)

    def receive(self, chunk: TagChunk) -> None:
        if chunk.key_epoch != self._params.key_epoch:
            raise StaleStateError("the partner's key epoch changed; match again")
        t = self._params.tag_length
        added = check_tags_blob(chunk.tags, t)
        removed = check_tags_blob(chunk.removed_tags, t)
        labelled = self._mode is Mode.INTERSECTION  # one label per tag; none in cardinality mode
        if (len(chunk.labels), len(chunk.removed_labels)) != ((added, removed) if labelled else (0, 0)):
            raise MalformedMessageError(f"a tag chunk's labels do not fit its tags in {self._mode.value} mode")
        if chunk.delta:
            first = self._changes[0] if self._changes else chunk
            if not self._delta or chunk.offset != len(self._changes) \
                    or (chunk.list_version, chunk.total) != (first.list_version, first.total):
                raise MalformedMessageError(f"change chunk {chunk.offset} does not follow the ones received")
            self._changes.append(chunk)
            return
        if self._changes or removed:
            raise MalformedMessageError("a tag chunk mixes the full set with changes")
        self._delta = False  # a partner may answer a request for changes with its full set
        self._first = self._first or chunk
        if chunk.offset != self.received or (chunk.list_version, chunk.total) != (
                self._first.list_version, self._first.total) or self.received + added > chunk.total:
            raise MalformedMessageError(f"tag chunk at offset {chunk.offset} does not follow the {self.received} "
                                        f"tags of version {self._first.list_version} received")
        self._tags += chunk.tags
        self._labels.extend(chunk.labels)

    def stream_ended(self) -> None:
        """The stream ended without error: the transfer must be complete."""
        if self._delta:
            self._apply_changes()
            return
        total = self._first.total if self._first else self._params.tag_count
        if self.received != total:
            raise MalformedMessageError(f"received {self.received} of {total} tags")
        self._result = (bytes(self._tags), self._labels,
                        self._first.list_version if self._first else self._params.list_version)

    def _apply_changes(self) -> None:
        if self._held is None or not self._changes:
            raise MalformedMessageError("the partner ended a change set without sending it")
        first = self._changes[0]
        tags, labels = apply_delta(self._held.tags, self._held.labels, self._params.tag_length, self._changes)
        if len(tags) // self._params.tag_length != first.total:
            raise MalformedMessageError("the partner's changes do not add up to its tag count")
        self._result = (tags, labels, first.list_version)

    def failed(self, error: PsiError, *, resumable: bool) -> None:
        """A stream broke (`resumable`: a transient fault) or a check failed; raises `error` if nothing is left.

        A full transfer resumes from its last offset; a dropped change set is asked for again,
        and any other failure of one (an old server refusing its size, a bad or short change set)
        gives way to the full set. A stale epoch or list is never retried: the caller matches again.
        """
        self._failures += 1
        if isinstance(error, StaleStateError) or self._failures > MAX_FAILURES:
            raise error from None
        if self._delta:
            self._changes = []
            self._delta = resumable
        elif not resumable:
            raise error from None

    def result(self) -> Synced:
        if self._result is None:
            raise OutOfOrderError("the tag transfer has not completed")
        return self._result
