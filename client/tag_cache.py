"""A partner's tag set kept on disk per key epoch, so a repeated query fetches only the changes."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from psi.messages import Mode

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class CachedTags:
    node_id: str
    list_id: str
    mode: Mode
    key_epoch: int
    list_version: int
    tag_length: int
    tags: bytes
    labels: tuple[bytes, ...]


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
            header, _, body = data.partition(b"\n")
            meta = json.loads(header)
            size = meta["tag_length"] * meta["count"]
            tags, labels, at = body[:size], [], size
            while at < len(body):  # length-prefixed labels, read by offset (no copies of the rest)
                length = int.from_bytes(body[at:at + 2], "big")
                labels.append(body[at + 2:at + 2 + length])
                at += 2 + length
            if len(tags) != size or (labels and len(labels) != meta["count"]):
                return None
            return CachedTags(node_id, list_id, mode, meta["key_epoch"], meta["list_version"],
                              meta["tag_length"], tags, tuple(labels))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, cached: CachedTags) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {"key_epoch": cached.key_epoch, "list_version": cached.list_version,
                "tag_length": cached.tag_length, "count": len(cached.tags) // cached.tag_length}
        body = b"".join(len(label).to_bytes(2, "big") + label for label in cached.labels)
        path = self._path(cached.node_id, cached.list_id, cached.mode)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(meta).encode() + b"\n" + cached.tags + body)
        os.replace(tmp, path)
