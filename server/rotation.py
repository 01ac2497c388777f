"""`psi keys rotate`: a new OPRF key epoch without a pause in service.

The new epoch's tags are computed beside the old ones first; then the audit
entry is written, the key file is replaced atomically (a running node
switches on its next request) and the old epoch's tags are dropped. Budgets
are per epoch, so they start afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from agency.config import NodeConfig, open_audit_log
from agency.file_lock import locked
from agency.keys import ServerKey, load_or_create_key, replace_key
from psi import oprf
from psi.errors import ConfigurationError
from server import audit_events as events
from server.store import Progress, Store


@dataclass(frozen=True)
class Rotation:
    old_epoch: int
    new_epoch: int
    tags: int


def rotate_key(config: NodeConfig, operator: str, progress: Progress | None = None) -> Rotation:
    audit = open_audit_log(config)
    store = Store(config.store_path)
    try:
        with locked(config.store_path):  # imports wait: they would compute the old epoch only
            if store.record_count() and not store.holds_profile(config.profile):
                raise ConfigurationError(
                    f"the list was stored under another match profile than '{config.profile.profile_id}'; "
                    "restart the node (or import) so that it recomputes the list, then rotate")
            old = load_or_create_key(config.key_path)
            new = ServerKey(old.epoch + 1, oprf.generate_key())
            store.clear_epoch(new.epoch)  # entries an interrupted rotation wrote under another key
            computed = store.fill_epoch(new, config.profile, progress)
            audit.append(events.key_rotated(operator, old.epoch, new.epoch, computed))
            replace_key(config.key_path, new)
            store.drop_other_epochs(new.epoch)
            return Rotation(old.epoch, new.epoch, computed)
    finally:
        store.close()
        audit.close()
