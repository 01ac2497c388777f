"""A partner's tag set kept on disk per key epoch, so a repeated query fetches only the changes."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from psi.messages import Mode
from psi.tagset import PackedLabels

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_FORMAT = 2  # files of another format are fetched again
_MAX_LABEL = 0xFFFF  # a label length is stored in two bytes


@dataclass(frozen=True)
class CachedTags:
    node_id: str
    list_id: str
    mode: Mode
    key_epoch: int
    list_version: int
    tag_length: int
    tags: bytes
    labels: Sequence[bytes]


class TagCache:
    """One file per partner node, list and mode in `folder` (mode 0600: tags are the partner's data)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, node_id: str, list_id: str, mode: Mode) -> Path:
        return self.folder / f"{_SAFE.sub('_', node_id)}__{_SAFE.sub('_', list_id)}__{mode.value}.tags"

    def load(self, node_id: str, list_id: str, mode: Mode) -> CachedTags | None:
        """The cached set, or None if there is none or it is unreadable (then it is fetched again)."""
        try:
            data = self._path(node_id, list_id, mode).read_bytes()
            newline = data.index(b"\n")
            meta = json.loads(data[:newline])
            if meta.get("format") != _FORMAT:
                return None
            body = memoryview(data)[newline + 1:]  # slices of it copy nothing
            count, size = meta["count"], meta["tag_length"] * meta["count"]
            tags, labels = bytes(body[:size]), PackedLabels(b"", np.empty(0, np.int64))
            if meta["labels"]:
                ends = np.cumsum(np.frombuffer(body, dtype="<u2", count=count, offset=size), dtype=np.int64)
                blob = body[size + 2 * count:]
                if len(blob) != (int(ends[-1]) if count else 0):
                    return None
                labels = PackedLabels(blob, ends)
            if len(tags) != size:
                return None
            return CachedTags(node_id, list_id, mode, meta["key_epoch"], meta["list_version"],
                              meta["tag_length"], tags, labels)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):  # any damage
            return None

    def save(self, cached: CachedTags) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        count = len(cached.tags) // cached.tag_length
        meta = {"format": _FORMAT, "key_epoch": cached.key_epoch, "list_version": cached.list_version,
                "tag_length": cached.tag_length, "count": count, "labels": bool(cached.labels)}
        # Label lengths as one array, then the labels back to back: written and read without a loop per label.
        labels = PackedLabels.of(cached.labels)
        if len(labels) and int(labels.lengths.max()) > _MAX_LABEL:
            return  # no sealed label is this long: such a set is used, not kept
        lengths = labels.lengths.astype("<u2").tobytes()
        path = self._path(cached.node_id, cached.list_id, cached.mode)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.writelines([json.dumps(meta).encode(), b"\n", cached.tags, lengths, labels.blob])
        os.replace(tmp, path)
