"""Tag sync without a network: the server's plan and chunks against the client's state machine."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psi import oprf
from psi.errors import InputError, MalformedMessageError, PsiError, RemoteError, StaleStateError
from psi.messages import Mode, Parameters, TagChunk
from psi.profiles import EXACT_PROFILE
from psi.tag_sync import (
    CHUNK_OVERHEAD,
    Changes,
    Synced,
    TagPlan,
    TagRequest,
    TagSync,
    plan_tags,
    tag_chunks,
)
from psi.tagset import Entry, PackedLabels, TagSnapshot, build_snapshot
from psiwire import codec

T = 8  # tag length
EPOCH = 3


def _entry(n: int, rng: random.Random | None = None) -> Entry:
    """Entry `n`: the same n gives the same entry; labels vary in length, as sealed labels do."""
    label_length = rng.randrange(17, 220) if rng else 17 + n % 60
    return (hashlib.sha256(b"t%d" % n).digest(), hashlib.shake_256(b"l%d" % n).digest(label_length),
            hashlib.sha256(b"c%d" % n).digest())


@dataclass
class Server:
    """A list's history as the store keeps it: each row with the version that added it and the one that removed it."""

    version: int = 1
    rows: list[tuple[Entry, int, int | None]] = field(default_factory=list)

    def change(self, added: Sequence[Entry], removed: Sequence[int] = ()) -> None:
        """A new list version: `added` entries, and the live rows at positions `removed` gone."""
        self.version += 1
        live = [i for i, (_, _, gone) in enumerate(self.rows) if gone is None]
        for position in set(removed):
            if position < len(live):
                entry, added_at, _ = self.rows[live[position]]
                self.rows[live[position]] = (entry, added_at, self.version)
        self.rows.extend((e, self.version, None) for e in added)

    def changes(self, since: int) -> Changes:
        """As `Store.changes`: what is new since `since`, and what a holder of `since` had that is gone."""
        live = [e for e, _, gone in self.rows if gone is None]
        return (self.version, len(live), [e for e, at, gone in self.rows if at > since and gone is None],
                [e for e, at, gone in self.rows if gone is not None and gone > since and at <= since])

    def snapshot(self, version: int | None = None) -> TagSnapshot:
        v = self.version if version is None else version
        held = [e for e, at, gone in self.rows if at <= v and (gone is None or gone > v)]
        return build_snapshot(EPOCH, v, T, [e[0] for e in held], [e[1] for e in held], [e[2] for e in held])

    def params(self) -> Parameters:
        snap = self.snapshot()
        return Parameters("node-b", "wanted", oprf.SUITE_ID, EPOCH, self.version, snap.count, snap.count, T,
                          EXACT_PROFILE.profile_id, EXACT_PROFILE.definition_hash,
                          (Mode.INTERSECTION, Mode.CARDINALITY))

    def stream(self, request: TagRequest, max_bytes: int) -> Iterator[TagChunk]:
        """StreamTags as the servicer runs it."""
        snapshot = self.snapshot()
        plan = plan_tags(request, snapshot)
        return tag_chunks(plan, snapshot, self.changes(plan.since_version) if plan.delta else None, max_bytes)


@dataclass(frozen=True)
class Held:
    key_epoch: int
    list_version: int
    tag_length: int
    tags: bytes
    labels: Sequence[bytes]


def _held(snapshot: TagSnapshot, mode: Mode) -> Held:
    labelled = mode is Mode.INTERSECTION
    return Held(snapshot.key_epoch, snapshot.list_version, snapshot.tag_length,
                snapshot.tags if labelled else snapshot.cardinality_tags, snapshot.labels if labelled else ())


Stream = Callable[[TagRequest], Iterator[TagChunk]]


def _sync(sync: TagSync, stream: Stream) -> Synced:
    """The client's loop (as `MatchClient.fetch_tags`), with any error a failed stream."""
    while (request := sync.next_request()) is not None:
        try:
            for chunk in stream(request):
                sync.receive(chunk)
            sync.stream_ended()
        except PsiError as exc:
            sync.failed(exc, resumable=isinstance(exc, RemoteError) and exc.status == "UNAVAILABLE")
    return sync.result()


def _pairs(tags: bytes, labels: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    return sorted((tags[i * T:(i + 1) * T], labels[i] if labels else b"") for i in range(len(tags) // T))


def _assert_current(synced: Synced, server: Server, mode: Mode) -> None:
    tags, labels, version = synced
    want = _held(server.snapshot(), mode)
    assert version == server.version
    assert _pairs(tags, labels) == _pairs(want.tags, want.labels)


def _server(entries: int, seed: int = 1) -> Server:
    rng = random.Random(seed)
    server = Server()
    server.change([_entry(n, rng) for n in range(entries)])
    return server


# The server's plan


def test_a_plan_checks_epoch_list_version_and_offset() -> None:
    snapshot = _server(10).snapshot()
    with pytest.raises(StaleStateError, match="epoch"):
        plan_tags(TagRequest(Mode.INTERSECTION, EPOCH + 1), snapshot)
    with pytest.raises(StaleStateError, match="list changed"):
        plan_tags(TagRequest(Mode.INTERSECTION, EPOCH, list_version=1, offset=4), snapshot)
    with pytest.raises(InputError, match="past the 10 tags"):
        plan_tags(TagRequest(Mode.INTERSECTION, EPOCH, offset=11), snapshot)


@pytest.mark.parametrize(("request_", "plan"), [
    (TagRequest(Mode.CARDINALITY, EPOCH, since_version=1, cached_tag_length=T), TagPlan(Mode.CARDINALITY, 0, 1)),
    (TagRequest(Mode.INTERSECTION, EPOCH, since_version=2, cached_tag_length=T), TagPlan(Mode.INTERSECTION, 0, 2)),
    (TagRequest(Mode.INTERSECTION, EPOCH, since_version=3, cached_tag_length=T), TagPlan(Mode.INTERSECTION)),
    (TagRequest(Mode.INTERSECTION, EPOCH, since_version=1, cached_tag_length=T + 1), TagPlan(Mode.INTERSECTION)),
    (TagRequest(Mode.INTERSECTION, EPOCH, 2, 5, since_version=1, cached_tag_length=T), TagPlan(Mode.INTERSECTION, 5)),
])
def test_changes_only_for_a_known_version_and_tag_length_from_the_start(request_: TagRequest, plan: TagPlan) -> None:
    assert plan_tags(request_, _server(10).snapshot()) == plan  # the snapshot is at version 2


# Round trips


@pytest.mark.parametrize("mode", list(Mode))
def test_a_full_transfer_in_many_chunks_gives_the_set(mode: Mode) -> None:
    server = _server(500)
    chunks = list(server.stream(TagRequest(mode, EPOCH), 2000))
    assert len(chunks) > 2 and [c.offset for c in chunks] == sorted({c.offset for c in chunks})
    _assert_current(_sync(TagSync(server.params(), mode), lambda r: server.stream(r, 2000)), server, mode)


def test_an_empty_set_still_sends_one_chunk_with_its_version() -> None:
    server = Server()
    (chunk,) = server.stream(TagRequest(Mode.INTERSECTION, EPOCH), 1000)
    assert (chunk.list_version, chunk.total, chunk.tags) == (1, 0, b"")
    assert _sync(TagSync(server.params(), Mode.INTERSECTION), lambda r: server.stream(r, 1000)) == (b"", [], 1)


def test_a_dropped_full_transfer_resumes_from_its_last_offset() -> None:
    server = _server(300)
    requests: list[TagRequest] = []

    def dropping(request: TagRequest) -> Iterator[TagChunk]:
        requests.append(request)
        for n, chunk in enumerate(server.stream(request, 1500)):
            if n == 3 and len(requests) < 3:
                raise RemoteError("UNAVAILABLE", "connection reset")
            yield chunk

    _assert_current(_sync(TagSync(server.params(), Mode.INTERSECTION), dropping), server, Mode.INTERSECTION)
    assert [r.offset > 0 for r in requests] == [False, True, True]
    assert requests[1].list_version == requests[2].list_version == server.version  # pinned to the first chunk's


def test_a_resume_after_the_list_changed_is_stale() -> None:
    server = _server(300)
    sync = TagSync(server.params(), Mode.INTERSECTION)
    request = sync.next_request()
    assert request is not None
    sync.receive(next(server.stream(request, 1500)))
    sync.failed(RemoteError("UNAVAILABLE", "reset"), resumable=True)
    server.change([_entry(1000)])
    resumed = sync.next_request()
    assert resumed is not None and resumed.offset > 0
    with pytest.raises(StaleStateError, match="list changed"):
        list(server.stream(resumed, 1500))


@pytest.mark.parametrize("mode", list(Mode))
def test_a_cached_client_gets_only_the_changes(mode: Mode) -> None:
    server = _server(200)
    held = _held(server.snapshot(), mode)
    server.change([_entry(n) for n in range(1000, 1040)], removed=range(0, 150, 3))
    requests: list[TagRequest] = []

    def stream(request: TagRequest) -> Iterator[TagChunk]:
        requests.append(request)
        return server.stream(request, 600)

    _assert_current(_sync(TagSync(server.params(), mode, held), stream), server, mode)
    assert requests == [TagRequest(mode, EPOCH, since_version=2, cached_tag_length=T)]
    chunks = list(stream(requests[0]))
    assert len(chunks) > 1 and all(c.delta for c in chunks) and [c.offset for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize("packed", [False, True])
def test_changes_keep_a_cached_set_sorted_and_its_labels_as_they_were_held(packed: bool) -> None:
    server = _server(200)
    snapshot = server.snapshot()
    held = Held(EPOCH, snapshot.list_version, T, snapshot.tags,
                PackedLabels.of(snapshot.labels) if packed else snapshot.labels)  # packed: as the cache file loads
    server.change([_entry(n) for n in range(1000, 1040)], removed=range(0, 150, 3))
    tags, labels, _ = _sync(TagSync(server.params(), Mode.INTERSECTION, held), lambda r: server.stream(r, 600))
    want = server.snapshot()
    assert (tags, list(labels)) == (want.tags, list(want.labels))  # in the server's order: sorted by tag
    assert isinstance(labels, PackedLabels) == packed


def test_an_unchanged_cache_needs_no_request_and_another_epoch_is_ignored() -> None:
    server = _server(50)
    held = _held(server.snapshot(), Mode.INTERSECTION)
    current = TagSync(server.params(), Mode.INTERSECTION, held)
    assert current.done and current.next_request() is None and current.result()[2] == server.version
    old_epoch = TagSync(server.params(), Mode.INTERSECTION, Held(EPOCH - 1, 1, T, held.tags, held.labels))
    assert old_epoch.next_request() == TagRequest(Mode.INTERSECTION, EPOCH)


# Byte bound


def test_a_big_change_set_with_labels_stays_under_the_message_limit() -> None:
    rng = random.Random(7)
    server = Server()
    server.change([_entry(n, rng) for n in range(100_000)])
    held = _held(server.snapshot(), Mode.INTERSECTION)
    server.change([_entry(n, rng) for n in range(200_000, 270_000)], removed=range(70_000))
    max_bytes = (4 << 20) - 1024  # the server's limit less a margin
    chunks = list(server.stream(TagRequest(Mode.INTERSECTION, EPOCH, since_version=2, cached_tag_length=T),
                                max_bytes))
    sizes = [codec.tag_chunk_to_pb(c).ByteSize() for c in chunks]
    assert len(chunks) > 2 and max(sizes) < max_bytes
    assert min(sizes[:-1]) > max_bytes - CHUNK_OVERHEAD - 300  # full, bar the last
    assert sum(len(c.tags) for c in chunks) // T == sum(len(c.removed_tags) for c in chunks) // T == 70_000
    _assert_current(_sync(TagSync(server.params(), Mode.INTERSECTION, held),
                          lambda r: server.stream(r, max_bytes)), server, Mode.INTERSECTION)


@pytest.mark.parametrize("mode", list(Mode))
def test_full_chunks_stay_under_the_limit_and_are_filled(mode: Mode) -> None:
    server = _server(20_000, seed=3)
    max_bytes = 64 << 10
    chunks = list(server.stream(TagRequest(mode, EPOCH), max_bytes))
    sizes = [codec.tag_chunk_to_pb(c).ByteSize() for c in chunks]
    assert max(sizes) < max_bytes and min(sizes[:-1]) > max_bytes - CHUNK_OVERHEAD - 300


def test_a_chunk_limit_smaller_than_one_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        list(_server(5).stream(TagRequest(Mode.INTERSECTION, EPOCH), CHUNK_OVERHEAD + T + 10))


# Failures of a change set


def _cached_client(server: Server) -> Held:
    """A client's copy of the current set, which the server then changes."""
    held = _held(server.snapshot(), Mode.INTERSECTION)
    server.change([_entry(n) for n in range(1000, 1010)], removed=[0, 1])
    return held


@pytest.mark.parametrize("failure", [
    RemoteError("RESOURCE_EXHAUSTED", "message larger than max"),  # an old server's one big change set
    MalformedMessageError("bad chunk"),
])
def test_a_failed_change_set_falls_back_to_the_full_set(failure: PsiError) -> None:
    server = _server(100)
    held = _cached_client(server)
    requests: list[TagRequest] = []

    def stream(request: TagRequest) -> Iterator[TagChunk]:
        requests.append(request)
        if request.since_version:
            raise failure
        return server.stream(request, 1000)

    _assert_current(_sync(TagSync(server.params(), Mode.INTERSECTION, held), stream), server, Mode.INTERSECTION)
    assert [r.since_version for r in requests] == [2, 0]


@pytest.mark.parametrize("spoil", [
    lambda c: TagChunk(c.key_epoch, c.list_version, c.offset, c.total + 1, c.tags, c.labels, True,
                       c.removed_tags, c.removed_labels),  # does not add up
    lambda c: TagChunk(c.key_epoch, c.list_version, c.offset + 1, c.total, c.tags, c.labels, True,
                       c.removed_tags, c.removed_labels),  # a chunk missing
    lambda c: TagChunk(c.key_epoch, c.list_version, c.offset, c.total, c.tags, c.labels[1:], True,
                       c.removed_tags, c.removed_labels),  # a label missing
])
def test_a_bad_change_set_is_never_applied(spoil: Callable[[TagChunk], TagChunk]) -> None:
    server = _server(100)
    held = _cached_client(server)
    requests: list[TagRequest] = []

    def stream(request: TagRequest) -> Iterator[TagChunk]:
        requests.append(request)
        chunks = server.stream(request, 100_000)
        return (spoil(c) for c in chunks) if request.since_version else chunks

    _assert_current(_sync(TagSync(server.params(), Mode.INTERSECTION, held), stream), server, Mode.INTERSECTION)
    assert [r.since_version for r in requests] == [2, 0]


def test_a_dropped_change_set_is_asked_for_again() -> None:
    server = _server(100)
    held = _cached_client(server)
    requests: list[TagRequest] = []

    def stream(request: TagRequest) -> Iterator[TagChunk]:
        requests.append(request)
        chunks = list(server.stream(request, 300))
        if len(requests) == 1:
            yield chunks[0]
            raise RemoteError("UNAVAILABLE", "reset")
        yield from chunks

    _assert_current(_sync(TagSync(server.params(), Mode.INTERSECTION, held), stream), server, Mode.INTERSECTION)
    assert [r.since_version for r in requests] == [2, 2]


def test_a_stale_epoch_and_repeated_failures_are_raised() -> None:
    server = _server(100)
    held = _cached_client(server)
    stale = TagSync(server.params(), Mode.INTERSECTION, held)
    with pytest.raises(StaleStateError):
        stale.failed(StaleStateError("the epoch changed"), resumable=False)
    sync = TagSync(server.params(), Mode.INTERSECTION)
    with pytest.raises(RemoteError, match="UNAVAILABLE"):
        for _ in range(10):
            sync.failed(RemoteError("UNAVAILABLE", "down"), resumable=True)
    with pytest.raises(MalformedMessageError, match="another"):
        TagSync(server.params(), Mode.INTERSECTION).failed(MalformedMessageError("another"), resumable=False)


def test_a_chunk_of_another_epoch_is_stale() -> None:
    server = _server(10)
    chunk = next(server.stream(TagRequest(Mode.INTERSECTION, EPOCH), 1000))
    with pytest.raises(StaleStateError):
        TagSync(server.params(), Mode.INTERSECTION).receive(
            TagChunk(EPOCH + 1, chunk.list_version, 0, chunk.total, chunk.tags, chunk.labels))


# Any cached version reaches exactly the current set


steps = st.lists(st.tuples(st.lists(st.integers(0, 40), max_size=8), st.lists(st.integers(0, 30), max_size=6)),
                 min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(steps=steps, held_at=st.integers(1, 7), mode=st.sampled_from(list(Mode)), max_bytes=st.sampled_from([300, 4096]))
def test_syncing_from_any_cached_version_gives_the_current_set(
        steps: list[tuple[list[int], list[int]]], held_at: int, mode: Mode, max_bytes: int) -> None:
    server = Server()
    server.change([_entry(n) for n in range(20)])
    for added, removed in steps:  # small numbers: the same entry is often removed and added again
        server.change([_entry(n) for n in added], removed)
    held = _held(server.snapshot(min(held_at, server.version)), mode) if held_at <= server.version else None
    requests: list[TagRequest] = []

    def stream(request: TagRequest) -> Iterator[TagChunk]:
        requests.append(request)
        return server.stream(request, max_bytes)

    _assert_current(_sync(TagSync(server.params(), mode, held), stream), server, mode)
    assert len(requests) == (0 if held and held.list_version == server.version else 1)
