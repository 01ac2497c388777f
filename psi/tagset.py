"""Sorted tag sets: the server's published snapshot and the client's lookup index.

Tags are sorted by value, so their order says nothing about the list's order;
lookups are numpy binary searches over fixed-width byte strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import overload

import numpy as np

from psi.errors import MalformedMessageError
from psi.messages import Mode, TagChunk
from psi.tags import check_tags_blob


class PackedLabels(Sequence[bytes]):
    """Sealed labels back to back in one buffer, with where each ends.

    A label becomes a bytes object only when it is read (a hit, a chunk being sent), so a
    million-entry set is two buffers, not a million small objects: kept, merged with a change
    set and written to a file without a loop per label.
    """

    def __init__(self, blob: bytes | memoryview, ends: np.ndarray) -> None:
        self._blob = memoryview(blob)
        self._ends = ends.astype(np.int64, copy=False)
        self._starts = np.concatenate(([0], self._ends[:-1])) if len(ends) else self._ends

    @classmethod
    def of(cls, labels: Sequence[bytes]) -> PackedLabels:
        """`labels` packed (as they are, if they already are)."""
        if isinstance(labels, PackedLabels):
            return labels
        return cls(b"".join(labels), np.cumsum(np.fromiter(map(len, labels), dtype=np.int64, count=len(labels))))

    @property
    def blob(self) -> memoryview:
        return self._blob

    @property
    def lengths(self) -> np.ndarray:
        return self._ends - self._starts

    def __len__(self) -> int:
        return len(self._ends)

    def __iter__(self) -> Iterator[bytes]:
        blob = self._blob
        return (bytes(blob[a:b]) for a, b in zip(self._starts.tolist(), self._ends.tolist(), strict=True))

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            blob, ends = self._blob, self._ends[start:stop].tolist()
            return [bytes(blob[a:b]) for a, b in zip(self._starts[start:stop].tolist(), ends, strict=True)]
        return bytes(self._blob[int(self._starts[index]):int(self._ends[index])])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedLabels):
            return np.array_equal(self.lengths, other.lengths) and self.blob == other.blob
        return isinstance(other, list | tuple) and len(self) == len(other) and all(
            a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # compared by content, so unhashable (like a list)

    def spliced(self, keep: np.ndarray, at: np.ndarray, additions: Sequence[bytes]) -> PackedLabels:
        """`spliced` for packed labels: the buffer is copied in runs."""
        starts, ends, inserts = _runs(keep, at)
        bounds = np.append(self._starts, len(self._blob))  # where each label starts, and the end
        blob, added = self._blob, iter(additions)
        pieces: list[bytes | memoryview] = []
        for a, b, insert in zip(bounds[starts].tolist(), bounds[ends].tolist(), inserts, strict=True):
            pieces.append(blob[a:b])
            if insert:
                pieces.append(next(added))
        lengths = np.insert(self.lengths[keep], at, np.fromiter(map(len, additions), np.int64, len(additions)))
        return PackedLabels(b"".join(pieces), np.cumsum(lengths))


def _runs(keep: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """How a sequence becomes what `keep` (a mask) keeps of it, with additions inserted before the kept
    positions `at` (as `np.insert` places them): runs [start, end) of the sequence in order, each followed
    by the next addition (True) or by a removed entry or the end (False). One run per change."""
    removed = np.flatnonzero(~keep)
    before = np.append(np.flatnonzero(keep), len(keep))[at]  # the position each addition precedes
    position = np.concatenate((before, removed))  # no addition precedes a removed entry
    is_removal = np.concatenate((np.zeros(len(before), np.int64), np.ones(len(removed), np.int64)))
    order = np.lexsort((is_removal, position))  # additions keep their order
    position, is_removal = position[order], is_removal[order]
    return (np.concatenate(([0], position + is_removal)), np.append(position, len(keep)),
            [*(is_removal == 0).tolist(), False])


def spliced(labels: Sequence[bytes], keep: np.ndarray, at: np.ndarray, additions: Sequence[bytes]
            ) -> Sequence[bytes]:
    """The labels `keep` (a mask) keeps, with `additions` inserted before the kept positions `at` (as
    `np.insert` places them), copied in runs, one per change: packed labels stay packed, others a tuple."""
    if isinstance(labels, PackedLabels):
        return labels.spliced(keep, at, additions)
    starts, ends, inserts = _runs(keep, at)
    out: list[bytes] = []
    added = iter(additions)
    for a, b, insert in zip(starts.tolist(), ends.tolist(), inserts, strict=True):
        out += labels[a:b]
        if insert:
            out.append(next(added))
    return tuple(out)


@dataclass(frozen=True)
class TagSnapshot:
    """One list version's published tags for one key epoch, in both modes."""

    key_epoch: int
    list_version: int
    tag_length: int
    tags: bytes  # intersection tags, sorted, packed
    labels: tuple[bytes, ...]  # sealed labels aligned with `tags` (objects: chunks are sent from them)
    cardinality_tags: bytes  # cardinality tags, sorted independently

    @property
    def count(self) -> int:
        return len(self.labels)

    @cached_property
    def entry_costs(self) -> np.ndarray:
        """`entry_costs` of the intersection entries, once per snapshot (full transfers slice it)."""
        return entry_costs(self.count, self.tag_length, self.labels)

    def updated(self, list_version: int, added: Sequence[Entry], removed: Sequence[Entry]) -> TagSnapshot:
        """This snapshot after a list change, without a rebuild: entries as `Store.changes` gives them.

        Both tag sets stay sorted by value; additions are inserted where they sort.
        """
        t = self.tag_length

        def net(pick: int, with_labels: bool) -> dict[Pair, int]:
            return _net(((e[pick][:t], e[1] if with_labels else b"") for e in added),
                        ((e[pick][:t], e[1] if with_labels else b"") for e in removed))

        tags, labels = _merged(self.tags, self.labels, t, net(0, True), ranked=True)
        cardinality_tags, _ = _merged(self.cardinality_tags, None, t, net(2, False), ranked=True)
        return TagSnapshot(self.key_epoch, list_version, t, tags, tuple(labels), cardinality_tags)

    def chunks(self, mode: Mode, offset: int, chunk_size: int) -> Iterator[TagChunk]:
        """TagChunks from `offset` (a tag index) to the end."""
        t = self.tag_length
        blob = self.tags if mode is Mode.INTERSECTION else self.cardinality_tags
        for start in range(offset, self.count, chunk_size):
            stop = min(start + chunk_size, self.count)
            labels = tuple(self.labels[start:stop]) if mode is Mode.INTERSECTION else ()
            yield TagChunk(self.key_epoch, self.list_version, start, self.count,
                           blob[start * t:stop * t], labels)


def entry_costs(count: int, tag_length: int, labels: Sequence[bytes]) -> np.ndarray:
    """Encoded bytes each entry adds to a TagChunk: its tag, and its label as one element of a repeated field."""
    costs = np.full(count, tag_length, dtype=np.int64)
    if labels:
        sizes = np.fromiter(map(len, labels), dtype=np.int64, count=count)
        costs += 2 + sizes + sum((sizes >> (7 * k) > 0).astype(np.int64) for k in range(1, 5))  # key, varint, bytes
    return costs


def _sorted_truncated(materials: Sequence[bytes], length: int) -> tuple[np.ndarray, bytes]:
    arr = np.array([m[:length] for m in materials], dtype=f"S{length}")
    order = np.argsort(arr, kind="stable")
    return order, arr[order].tobytes()


def build_snapshot(
    key_epoch: int,
    list_version: int,
    tag_length: int,
    tag_materials: Sequence[bytes],
    sealed_labels: Sequence[bytes],
    cardinality_materials: Sequence[bytes],
) -> TagSnapshot:
    """Sort and truncate precomputed materials into a publishable snapshot."""
    if not tag_materials:
        return TagSnapshot(key_epoch, list_version, tag_length, b"", (), b"")
    order, tags = _sorted_truncated(tag_materials, tag_length)
    _, ctags = _sorted_truncated(cardinality_materials, tag_length)
    labels = tuple(sealed_labels[i] for i in order)
    return TagSnapshot(key_epoch, list_version, tag_length, tags, labels, ctags)


class TagIndex:
    """Client-side lookup over a received tag set."""

    def __init__(self, tags: bytes, tag_length: int, labels: Sequence[bytes] = ()) -> None:
        count = check_tags_blob(tags, tag_length)
        if labels and len(labels) != count:
            raise MalformedMessageError(f"{count} tags but {len(labels)} labels")
        self.tag_length = tag_length
        arr = np.frombuffer(tags, dtype=f"S{tag_length}") if count else np.empty(0, f"S{tag_length}")
        self._order: np.ndarray | None = None  # None: received sorted (as servers send), so positions are ranks
        self._sorted = arr  # a check of order costs a fifth of a sort and its copy (~0.1 s at 1,400,000 tags)
        if not _is_sorted(arr):
            self._order = np.argsort(arr, kind="stable")
            self._sorted = arr[self._order]
        self._labels = labels  # not copied: a cache's packed labels stay packed

    def __len__(self) -> int:
        return len(self._sorted)

    def find(self, materials: Sequence[bytes]) -> list[list[int]]:
        """For each tag material, the positions (in received order) of equal tags."""
        if not materials:
            return []
        queries = np.array([m[: self.tag_length] for m in materials], dtype=f"S{self.tag_length}")
        left = np.searchsorted(self._sorted, queries, side="left")
        right = np.searchsorted(self._sorted, queries, side="right")
        order = self._order
        return [([] if hi == lo else list(range(lo, hi)) if order is None else order[lo:hi].tolist())
                for lo, hi in zip(left.tolist(), right.tolist(), strict=True)]

    def label(self, position: int) -> bytes:
        return self._labels[position]


Entry = tuple[bytes, bytes, bytes]  # (tag material, sealed label, cardinality material)


def delta_chunks(key_epoch: int, list_version: int, total: int, tag_length: int, mode: Mode,
                 added: Sequence[Entry], removed: Sequence[Entry], chunk_size: int) -> list[TagChunk]:
    """The changes since a client's version as TagChunks (additions sorted by value)."""
    pick = 0 if mode is Mode.INTERSECTION else 2

    def packed(items: Sequence[Entry]) -> tuple[bytes, tuple[bytes, ...]]:
        ordered = sorted(items, key=lambda e: e[pick][:tag_length])
        labels = tuple(e[1] for e in ordered) if mode is Mode.INTERSECTION else ()
        return b"".join(e[pick][:tag_length] for e in ordered), labels

    add_tags, add_labels = packed(added)
    rm_tags, rm_labels = packed(removed)
    chunks = []
    t = tag_length
    for n, start in enumerate(range(0, max(len(added), len(removed), 1), chunk_size)):
        stop = start + chunk_size
        chunks.append(TagChunk(key_epoch, list_version, n, total, add_tags[start * t:stop * t],
                               add_labels[start:stop], True, rm_tags[start * t:stop * t], rm_labels[start:stop]))
    return chunks


Pair = tuple[bytes, bytes]  # (truncated tag, sealed label or b"")


def _net(added: Iterable[Pair], removed: Iterable[Pair]) -> dict[Pair, int]:
    """Changes as a multiset: an entry removed and added again nets out."""
    net: dict[Pair, int] = {}
    for pairs, sign in ((added, 1), (removed, -1)):
        for pair in pairs:
            net[pair] = net.get(pair, 0) + sign
    return net


def _kept(arr: np.ndarray, labels: Sequence[bytes], net: dict[Pair, int], *, ranked: bool) -> np.ndarray:
    """Mask of the entries of `arr` (and `labels`, if any) that survive the net removals.

    Only the removed entries are searched for (binary search), so a small delta on a large
    set costs little beyond copying it. `ranked` says `arr` is already sorted.
    """
    keep = np.ones(len(arr), dtype=bool)
    removals = sorted((pair, -n) for pair, n in net.items() if n < 0)  # sorted probes: searches go faster
    if not removals:
        return keep
    order = None if ranked else np.argsort(arr, kind="stable")
    sorted_arr = arr if order is None else arr[order]
    probes = np.array([tag for (tag, _), _ in removals], dtype=arr.dtype)
    lows = np.searchsorted(sorted_arr, probes, side="left").tolist()
    highs = np.searchsorted(sorted_arr, probes, side="right").tolist()
    labelled = bool(labels)
    dropped: list[int] = []
    for ((_, label), copies), lo, hi in zip(removals, lows, highs, strict=True):
        positions = range(lo, hi) if order is None else order[lo:hi].tolist()
        dropped += [p for p in positions if not labelled or labels[p] == label][:copies]
    keep[dropped] = False
    return keep


def _additions(net: dict[Pair, int]) -> list[Pair]:
    return [pair for pair, n in net.items() for _ in range(n)]


def _pairs(blob: bytes, labels: Sequence[bytes], tag_length: int, with_labels: bool) -> list[Pair]:
    count = check_tags_blob(blob, tag_length) if blob else 0
    if with_labels and len(labels) != count:
        raise MalformedMessageError("a delta chunk's labels do not match its tags")
    return [(blob[i * tag_length:(i + 1) * tag_length], labels[i] if with_labels else b"") for i in range(count)]


def _as_array(tags: bytes, tag_length: int) -> np.ndarray:
    count = check_tags_blob(tags, tag_length) if tags else 0
    return np.frombuffer(tags, dtype=f"S{tag_length}") if count else np.empty(0, f"S{tag_length}")


def _is_sorted(arr: np.ndarray) -> bool:
    return len(arr) < 2 or bool(np.all(arr[1:] >= arr[:-1]))


def _merged(tags: bytes, labels: Sequence[bytes] | None, tag_length: int, net: dict[Pair, int], *,
            ranked: bool) -> tuple[bytes, Sequence[bytes]]:
    """A tag set (and its labels, if any; else `()`) after the net changes; additions go where they sort,
    so a sorted set stays sorted. `ranked` says the set is sorted."""
    arr = _as_array(tags, tag_length)
    keep = _kept(arr, labels or (), net, ranked=ranked)
    additions = sorted(_additions(net))
    kept = arr[keep]
    probes = np.array([tag for tag, _ in additions], dtype=arr.dtype)
    at = np.searchsorted(kept, probes)
    merged = np.insert(kept, at, probes).tobytes()
    return merged, () if labels is None else spliced(labels, keep, at, [label for _, label in additions])


def apply_delta(tags: bytes, labels: Sequence[bytes], tag_length: int, chunks: Sequence[TagChunk]
                ) -> tuple[bytes, Sequence[bytes]]:
    """A cached tag set (and labels, in intersection mode) after the delta chunks; a sorted set stays sorted."""
    with_labels = bool(labels) or any(c.labels or c.removed_labels for c in chunks)
    net = _net((p for c in chunks for p in _pairs(c.tags, c.labels, tag_length, with_labels)),
               (p for c in chunks for p in _pairs(c.removed_tags, c.removed_labels, tag_length, with_labels)))
    return _merged(tags, labels if with_labels else None, tag_length, net,
                   ranked=_is_sorted(_as_array(tags, tag_length)))
