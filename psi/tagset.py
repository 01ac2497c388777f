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
