"""A node's live state: its key, its store and the current tag snapshot."""

from __future__ import annotations

import threading

from psi import oprf, tags
from psi.messages import Mode, Parameters
from psi.tagset import TagSnapshot, build_snapshot
from server.audit.log import AuditLog
from server.config import NodeConfig
from server.keys import ServerKey
from server.store import Progress, Store


class Node:
    """Serves parameters and snapshots; rebuilds the snapshot only when the list changed."""

    def __init__(self, config: NodeConfig, key: ServerKey, store: Store, audit: AuditLog) -> None:
        self.config = config
        self.key = key
        self.store = store
        self.audit = audit
        self._lock = threading.Lock()
        self._snapshot: TagSnapshot | None = None

    def prepare(self, progress: Progress | None = None) -> None:
        """Bring the store's entries to the current epoch and build the first snapshot."""
        self.store.refresh_epoch(self.key, self.config.profile, progress)
        self.snapshot()

    def snapshot(self) -> TagSnapshot:
        with self._lock:
            current = self._snapshot
            if current is None or current.list_version != self.store.list_version:
                version, materials, labels, cmaterials = self.store.entries(self.key.epoch)
                length = tags.tag_length(len(materials), self.config.limits.max_query_size)
                current = build_snapshot(self.key.epoch, version, length, materials, labels, cmaterials)
                self._snapshot = current
            return current

    def close(self) -> None:
        """Sign the audit log's head and close the store."""
        self.audit.close()
        self.store.close()

    def parameters(self) -> Parameters:
        snap = self.snapshot()
        profile = self.config.profile
        return Parameters(
            node_id=self.config.node_id, list_id=self.config.list_id, suite=oprf.SUITE_ID,
            key_epoch=self.key.epoch, list_version=snap.list_version,
            list_size=self.store.record_count(), tag_count=snap.count, tag_length=snap.tag_length,
            profile_id=profile.profile_id, profile_hash=profile.definition_hash,
            modes=(Mode.INTERSECTION, Mode.CARDINALITY), limits=self.config.limits,
        )
