"""Sorted tag sets: the server's published snapshot and the client's lookup index.

Tags are sorted by value, so their order says nothing about the list's order;
lookups are numpy binary searches over fixed-width byte strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from psi.errors import MalformedMessageError
from psi.messages import Mode, TagChunk
from psi.tags import check_tags_blob


@dataclass(frozen=True)
class TagSnapshot:
    """One list version's published tags for one key epoch, in both modes."""

    key_epoch: int
    list_version: int
    tag_length: int
    tags: bytes  # intersection tags, sorted, packed
    labels: tuple[bytes, ...]  # sealed labels aligned with `tags`
    cardinality_tags: bytes  # cardinality tags, sorted independently

    @property
    def count(self) -> int:
        return len(self.labels)

    def chunks(self, mode: Mode, offset: int, chunk_size: int) -> Iterator[TagChunk]:
        """TagChunks from `offset` (a tag index) to the end."""
        t = self.tag_length
        blob = self.tags if mode is Mode.INTERSECTION else self.cardinality_tags
        for start in range(offset, self.count, chunk_size):
            stop = min(start + chunk_size, self.count)
            labels = self.labels[start:stop] if mode is Mode.INTERSECTION else ()
            yield TagChunk(self.key_epoch, self.list_version, start, self.count,
                           blob[start * t:stop * t], labels)


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
        self._order = np.argsort(arr, kind="stable")
        self._sorted = arr[self._order]
        self._labels = list(labels)

    def __len__(self) -> int:
        return len(self._sorted)

    def find(self, materials: Sequence[bytes]) -> list[list[int]]:
        """For each tag material, the positions (in received order) of equal tags."""
        if not materials:
            return []
        queries = np.array([m[: self.tag_length] for m in materials], dtype=f"S{self.tag_length}")
        left = np.searchsorted(self._sorted, queries, side="left")
        right = np.searchsorted(self._sorted, queries, side="right")
        return [self._order[lo:hi].tolist() for lo, hi in zip(left.tolist(), right.tolist(), strict=True)]

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


def apply_delta(tags: bytes, labels: Sequence[bytes], tag_length: int, chunks: Sequence[TagChunk]
                ) -> tuple[bytes, list[bytes]]:
    """A cached tag set (and labels, in intersection mode) after the delta chunks.

    Changes count as a multiset: an entry removed and added again within the delta nets out.
    Only the removed entries are searched for (binary search), so a small delta on a large
    set costs little beyond copying it.
    """
    with_labels = bool(labels) or any(c.labels or c.removed_labels for c in chunks)
    net: dict[tuple[bytes, bytes], int] = {}
    for chunk in chunks:
        for blob, chunk_labels, sign in ((chunk.tags, chunk.labels, 1), (chunk.removed_tags, chunk.removed_labels, -1)):
            count = check_tags_blob(blob, tag_length) if blob else 0
            if with_labels and len(chunk_labels) != count:
                raise MalformedMessageError("a delta chunk's labels do not match its tags")
            for i in range(count):
                item = (blob[i * tag_length:(i + 1) * tag_length], chunk_labels[i] if with_labels else b"")
                net[item] = net.get(item, 0) + sign
    count = check_tags_blob(tags, tag_length) if tags else 0
    arr = np.frombuffer(tags, dtype=f"S{tag_length}") if count else np.empty(0, f"S{tag_length}")
    keep = np.ones(count, dtype=bool)
    removals = {item: -n for item, n in net.items() if n < 0}
    if removals:
        order = np.argsort(arr, kind="stable")
        ranked = arr[order]
        for (tag, label), copies in removals.items():
            probe = np.array([tag], dtype=f"S{tag_length}")
            lo, hi = (int(np.searchsorted(ranked, probe, side=side)[0]) for side in ("left", "right"))
            matches = [p for p in order[lo:hi].tolist() if not with_labels or labels[p] == label]
            keep[matches[:copies]] = False
    kept = arr[keep].tobytes()
    kept_labels = [labels[i] for i in np.flatnonzero(keep).tolist()] if with_labels else []
    added = [(tag, label) for (tag, label), n in net.items() for _ in range(max(n, 0))]
    return kept + b"".join(t for t, _ in added), kept_labels + [label for _, label in added] if with_labels else []
