"""A node's live state: its key, store, policy, audit log, the current tag snapshot and bulk sender list."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agency.agreements import policy_hash
from agency.audit.log import AuditLog
from agency.config import NodeConfig
from agency.file_lock import locked
from agency.keys import ServerKey
from psi import oprf, tags
from psi.errors import AuditError, ConfigurationError
from psi.messages import Mode, Parameters
from psi.tagset import TagSnapshot, build_snapshot
from server import audit_events as events
from server import bulk
from server.followups import FollowUpDesk
from server.key_lifecycle import ensure_key, open_key, pending_path
from server.policy import Policy
from server.store import BulkInputs, Progress, Store

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int, int]:
    """(inode, mtime, size) of the key file; (-1, -1, -1) when it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (-1, -1, -1)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Node:
    """Serves parameters and snapshots; rebuilds the snapshot only when the list or the key changed.

    The key is opened read-only at start and checked on every request (one stat): a rotation
    (`psi keys rotate`, another process) replaces the file and commits the new epoch's row first,
    so the node moves to it; a key file that is missing, replaced or of another epoch than the
    store's makes the node stop serving (health NOT_SERVING, an audit entry, UNAVAILABLE to
    partners) instead of answering with the wrong key.
    """

    def __init__(self, config: NodeConfig, store: Store, audit: AuditLog,
                 on_serving: Callable[[bool], None] = lambda serving: None) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        self.followups = FollowUpDesk(store, audit, config.data_dir)
        self.policy = Policy(config.agreements)
        self.on_serving = on_serving  # the health service's hook (server.app)
        self._lock = threading.Lock()  # the key
        self._snapshot_lock = threading.Lock()  # the snapshot, held while one is rebuilt
        self._closed = threading.Event()
        self._key_stamp: tuple[int, int, int] = (-1, -1, -1)
        self._key: ServerKey | None = None
        self._refusal = ""  # why the node does not serve, once it stopped
        self._snapshot: TagSnapshot | None = None
        self._record_count = 0  # of the snapshot's list version
        self._bulk_lock = threading.Lock()  # the bulk list, held while one is built
        self._bulk_list: bulk.PreparedList | None = None

    def prepare(self, operator: str, progress: Progress | None = None, justification: str = "") -> None:
        """Open (or, for a new node, create) the key, bring the store to its epoch, build the first snapshot
        and, when a partner may use mode bulk, the bulk list."""
        with locked(self.config.store_path):  # not beside an import or a rotation
            self._key = ensure_key(self.config.key_path, self.store, self.audit, operator)
            self._key_stamp = _stamp(self.config.key_path)
            self.store.refresh_epoch(self._key, self.config.profile, progress)
            self.store.backfill_label_keys(self._key, progress)  # entries from before store schema 2
        digest = policy_hash(self.policy.agreements)
        if self.store.setting("policy_hash") != digest:
            self.audit.append(events.policy_changed(sorted(self.policy.agreements), digest, operator, justification))
            self.store.set_setting("policy_hash", digest)
        key, _ = self.current()
        if self.offers_bulk:
            self.bulk_list(key)

    @property
    def offers_bulk(self) -> bool:
        """Whether any partner's agreement allows mode bulk (only then is a bulk list kept)."""
        return any(Mode.BULK in agreement.modes for agreement in self.policy.agreements.values())

    @property
    def serving(self) -> bool:
        return not self._refusal

    @property
    def key(self) -> ServerKey:
        """The current key; ConfigurationError (UNAVAILABLE) once the node has stopped serving."""
        with self._lock:
            return self._current_key()

    def _current_key(self) -> ServerKey:
        if self._refusal:
            raise ConfigurationError(self._refusal)
        stamp = _stamp(self.config.key_path)
        if self._key is None or stamp != self._key_stamp:
            try:
                self._key = open_key(self.config.key_path, self.store)
            except ConfigurationError as exc:
                self._stop_serving(str(exc))
                raise
            self._key_stamp = stamp
        return self._key

    def _stop_serving(self, reason: str) -> None:
        self._refusal = f"the node has stopped serving: {reason}"
        log.error("%s", self._refusal)
        self.on_serving(False)
        self.audit.append(events.node_not_serving(reason))

    def current(self) -> tuple[ServerKey, TagSnapshot]:
        """The key and the snapshot of its epoch, taken together.

        A rebuild holds only the snapshot lock: requests that need just the key (admission,
        follow-ups) do not wait for it.
        """
        key = self.key
        with self._snapshot_lock:
            snap = self._snapshot
            if snap is None or snap.key_epoch != key.epoch or snap.list_version != self.store.list_version:
                snap = self._changed(snap, key) or self._built(key)
                self._snapshot, self._record_count = snap, self.store.record_count()
            return key, snap

    def _built(self, key: ServerKey) -> TagSnapshot:
        version, materials, labels, cmaterials = self.store.entries(key.epoch)
        length = tags.tag_length(len(materials), self.config.limits.max_query_size)
        return build_snapshot(key.epoch, version, length, materials, labels, cmaterials)

    def _changed(self, snap: TagSnapshot | None, key: ServerKey) -> TagSnapshot | None:
        """The snapshot with a small list change applied, or None when a rebuild is due.

        A rebuild is due for another epoch, a change of tag length, or a change of more than
        a quarter of the list (then sorting afresh costs no more).
        """
        if snap is None or snap.key_epoch != key.epoch:
            return None
        version, total, added, removed = self.store.changes(key.epoch, snap.list_version)
        if tags.tag_length(total, self.config.limits.max_query_size) != snap.tag_length or \
                len(added) + len(removed) > total // 4:
            return None
        updated = snap.updated(version, added, removed)
        return updated if updated.count == total else None

    def snapshot(self) -> TagSnapshot:
        return self.current()[1]

    def problem(self) -> str:
        """Why the node cannot serve right now, or "" when it can (what the health service reports)."""
        if self._refusal:
            return self._refusal
        if pending_path(self.config.key_path).exists():
            return "a key rotation is in progress"
        try:
            self.audit.open_intents()  # catches up with, and checks, what any process appended
        except AuditError as exc:
            return str(exc)
        return ""

    def watch_health(self, report: Callable[[bool], None], every: float = 1.0) -> None:
        """Report whether the node can serve every `every` seconds, until it is closed."""
        def run() -> None:
            while not self._closed.wait(every):
                report(not self.problem())

        threading.Thread(target=run, daemon=True, name="health-watch").start()

    def close(self) -> None:
        """Stop the health watch, sign the audit log's head and close the store."""
        self._closed.set()
        self.audit.close()
        self.store.close()

    def parameters(self, snap: TagSnapshot | None = None) -> Parameters:
        snap = snap or self.snapshot()
        profile = self.config.profile
        return Parameters(
            node_id=self.config.node_id, list_id=self.config.list_id, suite=oprf.SUITE_ID,
            key_epoch=snap.key_epoch, list_version=snap.list_version,
            list_size=self._record_count, tag_count=snap.count, tag_length=snap.tag_length,
            profile_id=profile.profile_id, profile_hash=profile.definition_hash,
            modes=(Mode.INTERSECTION, Mode.CARDINALITY), limits=self.config.limits,
            bulk_suite=bulk.suite(),
        )

    def bulk_list(self, key: ServerKey) -> bulk.PreparedList:
        """The key's epoch's list as bulk senders start from it, built again only once the epoch or the
        list version moved on (a rotation, an import by another process).

        One build at a time under its own lock: a second session waits for that build instead of starting
        another, and requests that need no bulk list never take the lock. The old list is let go before
        the new one is read, so the node holds one (sessions still running keep theirs until they end).
        """
        with self._bulk_lock:
            prepared = self._bulk_list
            if prepared is None or prepared.key_epoch != key.epoch or prepared.list_version != self.store.list_version:
                prepared = self._bulk_list = None
                started = time.perf_counter()
                prepared = self._bulk_list = bulk.prepare_list(key.epoch, self._bulk_inputs(key))
                log.info("bulk list of key epoch %d, list version %d: %d entries, %d keys, built in %.1f s",
                         key.epoch, prepared.list_version, prepared.entries, prepared.sender.groups,
                         time.perf_counter() - started)
            return prepared

    def _bulk_inputs(self, key: ServerKey) -> BulkInputs:
        """The key's epoch's entries as a bulk sender takes them (`Store.bulk_inputs`).

        Entries still without their label key (written by older software since the start) are filled
        in first, under the list lock, as at start-up; a list built from them stays valid for its epoch
        and list version, so this check runs only when a list is built.
        """
        if self.store.missing_label_keys(key.epoch):
            with locked(self.config.store_path):
                self.store.backfill_label_keys(key)
        return self.store.bulk_inputs(key.epoch)
