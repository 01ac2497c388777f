"""Audited operations: an intent entry, the store change that records the op id, an outcome entry.

While an operation runs, its process holds an flock on `ops/OP_ID.lock` in the
data dir. The kernel drops the lock when the process dies, however it dies, so
start-up reconciliation (server.recovery) settles exactly the intents whose
writer is gone and never one that another process is still carrying out.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agency.audit.log import AuditLog


def _lock_path(data_dir: Path, op_id: str) -> Path:
    return data_dir / "ops" / f"{op_id}.lock"


@contextlib.contextmanager
def audited(audit: AuditLog, data_dir: Path, intent: dict[str, Any]) -> Iterator[str]:
    """Write `intent`, yield its op id for the store change and the outcome; the lock spans all three.

    The caller writes the outcome (`audit.outcome(op_id, ...)`); an exception before it leaves the
    intent open, for reconciliation to settle from what the store holds.
    """
    op_id = uuid.uuid4().hex
    path = _lock_path(data_dir, op_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        audit.intent(intent, op_id=op_id)
        yield op_id
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def is_running(data_dir: Path, op_id: str) -> bool:
    """Whether a live process still carries out `op_id` (holds its lock)."""
    try:
        fd = os.open(_lock_path(data_dir, op_id), os.O_RDWR)
    except FileNotFoundError:
        return False  # the lock file goes only after the outcome, or with a writer that died before
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    _lock_path(data_dir, op_id).unlink(missing_ok=True)
    return False
