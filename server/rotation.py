"""`psi keys rotate`: a new OPRF key epoch without a pause in service.

An intent entry first; the new key is written beside the old one
(`oprf.key.new`) and its epoch's tags are computed beside the old ones; one
transaction makes the new epoch the store's; the key file is then replaced
atomically (a running node switches on its next request), the old epoch's
tags are dropped and the outcome entry written. A crash anywhere is settled at
the next start (`server.recovery`). Budgets are per epoch, so they start afresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agency.config import NodeConfig, open_audit_log
from agency.faults import crash_point
from agency.file_lock import locked
from agency.keys import create_key, key_fingerprint
from psi.errors import ConfigurationError
from psi.executor import INLINE, Executor
from server import audit_events as events
from server.key_lifecycle import ensure_key, install_pending, pending_path
from server.operations import audited
from server.recovery import reconcile
from server.store import Progress, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rotation:
    old_epoch: int
    new_epoch: int
    tags: int


def rotate_key(config: NodeConfig, operator: str, progress: Progress | None = None,
               executor: Executor = INLINE) -> Rotation:
    audit = open_audit_log(config)
    store = Store(config.store_path, executor)
    try:
        for note in reconcile(config, store, audit):
            log.warning("%s", note)
        with locked(config.store_path):  # imports wait: they would compute the old epoch only
            if store.record_count() and not store.holds_profile(config.profile):
                raise ConfigurationError(
                    f"the list was stored under another match profile than '{config.profile.profile_id}'; "
                    "restart the node (or import) so that it recomputes the list, then rotate")
            old = ensure_key(config.key_path, store, audit, operator)
            intent = events.key_rotated(operator, old.epoch, old.epoch + 1, 0)
            with audited(audit, config.data_dir, intent) as op_id:
                new = create_key(pending_path(config.key_path), old.epoch + 1)
                store.clear_epoch(new.epoch)  # entries an interrupted rotation wrote under another key
                computed = store.fill_epoch(new, config.profile, progress)
                crash_point("rotate.after_fill")
                with store.transaction() as db:  # the new epoch is the store's from here on
                    store.record_key_epoch(db, new.epoch, key_fingerprint(new))
                    store.mark_operation(db, op_id, "key.rotate")
                crash_point("rotate.after_commit")
                install_pending(config.key_path)
                crash_point("rotate.after_install")
                store.drop_other_epochs(new.epoch)
                audit.outcome(op_id, events.key_rotated(operator, old.epoch, new.epoch, computed))
            return Rotation(old.epoch, new.epoch, computed)
    finally:
        store.close()
        audit.close()


def init_key(config: NodeConfig, operator: str) -> tuple[int, str]:
    """`psi keys init`: create the node's first key (or adopt an older store's); its epoch and fingerprint."""
    audit = open_audit_log(config)
    store = Store(config.store_path)
    try:
        with locked(config.store_path):
            key = ensure_key(config.key_path, store, audit, operator)
            return key.epoch, key_fingerprint(key)
    finally:
        store.close()
        audit.close()
