"""The OPRF key's lifecycle: created once, opened read-only, rotated, and checked against the store.

Every key epoch is a row of the store (`key_epochs`: epoch, fingerprint). The
key file must hold exactly the newest epoch's key; anything else (a missing,
replaced or older file) means the node would answer with the wrong key, so it
refuses to serve instead. Keys are created only by `ensure_key` (the first
start of a node, an import into a new node, `psi keys init`) and by a
rotation (`server.rotation`), never on the request path.

A rotation writes the new key beside the old one (`oprf.key.new`), commits
its epoch row, then renames the file into place; `recover_rotation` finishes
or discards one that a crash cut short.
"""

from __future__ import annotations

import os
from pathlib import Path

from agency.audit.log import AuditLog
from agency.keys import ServerKey, create_key, key_fingerprint, load_key
from psi.errors import ConfigurationError
from server import audit_events as events
from server.store import Store


def pending_path(key_path: Path) -> Path:
    """Where a rotation keeps the next epoch's key until its epoch is committed."""
    return key_path.with_name(key_path.name + ".new")


def install_pending(key_path: Path) -> None:
    """Move a committed rotation's key into place, durably."""
    os.replace(pending_path(key_path), key_path)
    fd = os.open(key_path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_key(key_path: Path, store: Store, audit: AuditLog, operator: str) -> ServerKey:
    """The node's key; created (epoch 1) only for a node that never had one. Audited when created or adopted."""
    if store.current_key_epoch() is None:
        if key_path.exists():  # a store of the release before key epochs were rows: adopt its key
            key = load_key(key_path)
            store.record_key_epoch(None, key.epoch, key_fingerprint(key))
            audit.append(events.key_lifecycle("key.adopted", operator, key.epoch, key_fingerprint(key)))
            return key
        key = create_key(key_path, 1)
        store.record_key_epoch(None, key.epoch, key_fingerprint(key))
        audit.append(events.key_lifecycle("key.created", operator, key.epoch, key_fingerprint(key)))
        return key
    return open_key(key_path, store)


def open_key(key_path: Path, store: Store) -> ServerKey:
    """The key file's key, if it is the store's newest epoch; ConfigurationError saying what is wrong otherwise."""
    current = store.current_key_epoch()
    if current is None:
        raise ConfigurationError(f"this node has no OPRF key yet; run `psi keys init --config ...` "
                                 f"(expected at {key_path})")
    epoch, fingerprint = current
    key = load_key(key_path)
    if key.epoch != epoch or key_fingerprint(key) != fingerprint:
        raise ConfigurationError(
            f"key file {key_path} holds epoch {key.epoch} (fingerprint {key_fingerprint(key)[:16]}), but the "
            f"store's current epoch is {epoch} (fingerprint {fingerprint[:16]}): the key was replaced or restored "
            "from another copy; restore the right key file or rotate from a known state")
    return key


def recover_rotation(key_path: Path, store: Store) -> str | None:
    """Finish or discard a rotation a crash cut short; says what it did (None: nothing to do)."""
    pending = pending_path(key_path)
    if not pending.exists():
        return None
    key = load_key(pending)
    current = store.current_key_epoch()
    if current == (key.epoch, key_fingerprint(key)):
        install_pending(key_path)
        return f"finished the rotation to key epoch {key.epoch}"
    pending.unlink()
    store.clear_epoch(key.epoch)
    return f"discarded an unfinished rotation to key epoch {key.epoch}"
