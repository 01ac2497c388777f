"""The node's locks and the one order in which they are taken (this module owns it).

A node's processes (the server, imports, rotations, officer commands) share a
data dir; its threads share one store connection. Locks, outermost first:

    0. Node._bulk_lock      a serving node's bulk list, held while it is built (a build may fill in
                            label keys under the list lock); never held with 2
    1. the list lock        flock on watchlist.sqlite.lock (`locked(store_path)`): one change of the
                            list, key or follow-up state at a time; start-up reconciliation and
                            migrations run under it, so none of them sees another half done
    2. Node._snapshot_lock  a serving node's tag snapshot, held while it is rebuilt
       Node._lock           its current key (taken briefly, never while waiting for a rebuild)
    3. Admission._lock      budget reservations, together with the store write they guard
    4. the store            Store._lock (its one connection) then SQLite's write lock (BEGIN IMMEDIATE)
    5. the audit log        AuditLog._lock then flock on audit.log.lock: a leaf, never held while
                            taking another lock

A lock is only taken while holding locks above it in this list. The audit
log is written outside store transactions (an intent before, an outcome
after, server.recovery): its fsync never holds up the store's writers.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the node-wide lock of `path`: the file PATH.lock, separate so that `path` may be replaced."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
