"""Append audit entries durably; several processes of one node may share a log.

Every append takes an exclusive lock on `LOG.lock`, catches up with entries
other processes wrote, writes one line and fsyncs it before returning, so a
caller releases nothing whose record is not on disk. Checkpoints are signed
every `checkpoint_every` entries and on close; the latest one is also kept in
`LOG.checkpoint` so that a truncated log is detected.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agency.audit.chain import Signer, Verifier, checkpoint_line, make_entry
from agency.audit.verify import LogState, scan, sidecar_path
from agency.file_lock import locked
from psi.errors import AuditError

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class AuditLog:
    """One node's audit log. Raises AuditError whenever an entry is not durably written."""

    def __init__(self, path: Path, node_id: str, signer: Signer, *, checkpoint_every: int = 100,
                 clock: Clock = utc_now) -> None:
        self.path = path
        self.node_id = node_id
        self._signer = signer
        self._verifier = Verifier(signer.public_pem())
        self._every = checkpoint_every
        self._clock = clock
        self._lock = threading.Lock()
        self._state = LogState()
        self._seen = (-1, -1)  # (inode, size) of the log as this process last knew it
        self._unsigned = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, locked(path):
            self._catch_up()

    def _catch_up(self) -> None:
        """Re-read the log if another process changed it; repair a torn tail once."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._state, self._seen = LogState(), (-1, 0)
            return
        if (st.st_ino, st.st_size) == self._seen:
            return
        data = self.path.read_bytes()
        state = scan(data, self._verifier)
        if state.problem:
            raise AuditError(f"audit log {self.path} fails verification ({state.problem.message}); "
                             "run `psi audit verify` and restore it before serving")
        torn = state.torn_tail_bytes
        if torn:
            os.truncate(self.path, len(data) - torn)
        self._state = state
        self._seen = (st.st_ino, len(data) - torn)
        self._unsigned = state.next_seq - state.last_checkpoint_count
        if torn:
            self._write({"operation": "log.recovered", "outcome": "ok",
                         "message": f"removed a torn tail of {torn} bytes left by an interrupted write"})

    def _write_line(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        self._seen = (st.st_ino, st.st_size)

    def _write(self, body: dict[str, Any]) -> int:
        full = {"time": timestamp(self._clock()), "node": self.node_id, **body}
        entry = make_entry(self._state.next_seq, self._state.head, full)
        self._write_line(entry.line())
        self._state.head, self._state.next_seq = entry.hash, entry.seq + 1
        self._unsigned += 1
        if self._unsigned >= self._every:
            self._checkpoint()
        return entry.seq

    def _checkpoint(self) -> None:
        line = checkpoint_line(self._state.next_seq, self._state.head, timestamp(self._clock()),
                               self._signer)
        self._write_line(line)
        write_atomically(sidecar_path(self.path), line)
        self._state.last_checkpoint_count = self._state.next_seq
        self._unsigned = 0

    def append(self, body: dict[str, Any]) -> int:
        """Write one entry durably and return its sequence number."""
        try:
            with self._lock, locked(self.path):
                self._catch_up()
                return self._write(body)
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror}") from None

    def checkpoint(self) -> None:
        """Sign the current head now (also done every `checkpoint_every` entries and on close)."""
        try:
            with self._lock, locked(self.path):
                self._catch_up()
                if self._unsigned or not self.path.exists():
                    self._checkpoint()
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        self.checkpoint()
