"""Append audit entries durably; several processes of one node may share a log.

Every append takes an exclusive lock on `LOG.lock`, catches up with entries
other processes wrote, writes one line and fsyncs it before returning, so a
caller releases nothing whose record is not on disk. A write that fails
(disk full) is undone, so the log never holds a partial line before later ones.

Checkpoints are signed every `checkpoint_every` entries, once the oldest
unsigned entry is `checkpoint_seconds` old (a timer thread), and on close;
the latest one is also kept in `LOG.checkpoint` so that a truncated log is
detected.

Writers do not re-verify what was verified before: `LOG.head` records the
verified prefix (see `Head`), written with each checkpoint, and a writer
verifies only the bytes after it. `psi audit verify` never reads it.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from agency.audit.chain import (
    Signer,
    Verifier,
    base_message,
    chain_hash,
    checkpoint_line,
    checkpoint_message,
    entry_digest,
    make_entry,
)
from agency.audit.verify import LogState, scan, sidecar_path, track_intent
from agency.file_lock import locked
from psi.errors import AuditError

Clock = Callable[[], dt.datetime]
_log = logging.getLogger(__name__)
_HEAD_FORMAT = "psi-audit-head-v1"
_CHUNK = 4 << 20  # verify in chunks: memory stays flat however long the new part is


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def write_all(fd: int, data: bytes) -> None:
    """Write every byte: os.write may write fewer (a full disk) before it raises."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` whole, or leave it as it was (the temp file is removed)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def write_failure(what: str, exc: OSError) -> str:
    """The message for a write of `what` that failed and was undone."""
    if exc.errno == errno.ENOSPC:
        return f"no space left on device writing {what}; free space and retry: nothing was written"
    return f"cannot write {what}: {exc.strerror or exc}; nothing was written"


def head_path(log: Path) -> Path:
    return log.with_name(log.name + ".head")


@dataclass(frozen=True)
class Head:
    """The verified prefix of a log, as `LOG.head` records it (JSON, one object):

    {"format": "psi-audit-head-v1", "inode": ..., "offset": bytes verified,
     "last_line": offset of the prefix's last line, "lines": lines in the prefix,
     "next_seq": ..., "head": h(next_seq - 1) hex, "last_checkpoint_count": ...,
     "open_intents": {op id: intent body}}
    """

    inode: int
    state: LogState

    def dump(self) -> bytes:
        s = self.state
        return json.dumps({"format": _HEAD_FORMAT, "inode": self.inode, "offset": s.valid_bytes,
                           "last_line": s.last_line_start, "lines": s.lines, "next_seq": s.next_seq,
                           "head": s.head.hex(), "last_checkpoint_count": s.last_checkpoint_count,
                           "open_intents": s.intents}, sort_keys=True).encode() + b"\n"

    @classmethod
    def load(cls, data: bytes) -> Head | None:
        try:
            doc = json.loads(data)
            if doc["format"] != _HEAD_FORMAT:
                return None
            state = LogState(next_seq=doc["next_seq"], head=bytes.fromhex(doc["head"]),
                             last_checkpoint_count=doc["last_checkpoint_count"], valid_bytes=doc["offset"],
                             lines=doc["lines"], last_line_start=doc["last_line"], intents=doc["open_intents"])
            numbers = (doc["inode"], state.next_seq, state.last_checkpoint_count, state.valid_bytes,
                       state.lines, state.last_line_start)
            if not all(isinstance(n, int) and n >= 0 for n in numbers) or len(state.head) != 32 \
                    or not isinstance(state.intents, dict) or state.last_line_start > state.valid_bytes:
                return None
            return cls(doc["inode"], state)
        except (ValueError, KeyError, TypeError):
            return None


def save_head(log: Path, inode: int, state: LogState) -> None:
    """Record a verified prefix; not fsynced: a lost or stale head only costs a longer verification."""
    write_atomically(head_path(log), Head(inode, state).dump(), durable=False)


def _ends_head(raw: bytes, state: LogState, verifier: Verifier) -> bool:
    """Whether `raw`, the prefix's last line as the file holds it now, ends the chain at `state`."""
    try:
        obj = json.loads(raw)
        kind, moment, signature = obj["kind"], str(obj.get("time")), str(obj.get("signature", ""))
        if kind == "entry":
            seq, prev = obj["seq"], bytes.fromhex(obj["prev"])
            return bool(seq == state.next_seq - 1 and bytes.fromhex(obj["hash"]) == state.head
                        and chain_hash(prev, entry_digest(seq, obj["body"])) == state.head)
        if kind == "checkpoint":
            return bool(obj["count"] == state.next_seq and bytes.fromhex(obj["head"]) == state.head
                        and verifier.check(checkpoint_message(state.next_seq, state.head, moment), signature))
        return bool(kind == "base" and state.lines == 1 and obj["next_seq"] == state.next_seq
                    and bytes.fromhex(obj["prev"]) == state.head
                    and verifier.check(base_message(state.next_seq, state.head, moment), signature))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


class AuditLog:
    """One node's audit log. Raises AuditError whenever an entry is not durably written."""

    def __init__(self, path: Path, node_id: str, signer: Signer, *, checkpoint_every: int = 100,
                 checkpoint_seconds: float = 10.0, clock: Clock = utc_now,
                 monotonic: Callable[[], float] = time.monotonic, timer: bool = True) -> None:
        """`timer=False`: no thread; the caller calls `sign_if_due` (tests, with a fake `monotonic`)."""
        self.path = path
        self.node_id = node_id
        self._signer = signer
        self._verifier = Verifier(signer.public_pem())
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._state = LogState()
        self._inode = -1  # of the log this process verified (-1: none yet)
        self._pending_since: float | None = None  # monotonic time the oldest unsigned entry was seen
        self._stopped = threading.Event()  # set: no (more) timer thread
        if not timer:
            self._stopped.set()
        self._wake = threading.Event()
        self._timer: threading.Thread | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._guard():
            self._catch_up()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """This process's and the node's locks; OSErrors become AuditErrors (fail closed)."""
        try:
            with self._lock, locked(self.path):
                yield
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from None

    @property
    def _unsigned(self) -> int:
        return self._state.next_seq - self._state.last_checkpoint_count

    def _catch_up(self) -> None:
        """Verify what other processes appended since; repair a torn tail once."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._adopt(LogState(), -1)
            return
        full = False
        if st.st_ino != self._inode or st.st_size < self._state.valid_bytes:
            known = self._verified_head(st)
            full = known is None
            self._adopt(known or LogState(), st.st_ino)
        if st.st_size == self._state.valid_bytes:
            return
        with self.path.open("rb") as handle:
            state = self._verify_rest(handle)
        if state.problem:
            raise AuditError(f"audit log {self.path} fails verification ({state.problem.message}); "
                             "run `psi audit verify` and restore it before serving")
        torn = state.torn_tail_bytes
        if torn:
            os.truncate(self.path, state.valid_bytes)
        self._adopt(state, st.st_ino)
        if full:
            self._save_head()
        if torn:
            self._write({"operation": "log.recovered", "outcome": "ok",
                         "message": f"removed a torn tail of {torn} bytes left by an interrupted write"})

    def _verified_head(self, st: os.stat_result) -> LogState | None:
        """The prefix `LOG.head` records, if the log still ends it there; None means verify it all."""
        try:
            head = Head.load(head_path(self.path).read_bytes())
        except OSError:  # missing or unreadable: a cache, so verify in full and rewrite it
            return None
        if head is None or head.inode != st.st_ino or head.state.valid_bytes > st.st_size:
            return None
        state, start = head.state, head.state.last_line_start
        if state.valid_bytes == 0:
            return state
        with self.path.open("rb") as handle:  # the last line, and the newline before it
            handle.seek(max(start - 1, 0))
            raw = handle.read(state.valid_bytes - handle.tell())
        before, line = (raw[:1], raw[1:]) if start else (b"\n", raw)
        if before != b"\n" or not line.endswith(b"\n") or b"\n" in line[:-1]:
            return None
        return state if _ends_head(line[:-1], state, self._verifier) else None

    def _verify_rest(self, handle: BinaryIO) -> LogState:
        """Verify the log from the end of the verified prefix on, chunk by chunk."""
        state = self._state
        handle.seek(state.valid_bytes)
        carry = b""
        while chunk := handle.read(_CHUNK):
            data = carry + chunk
            end = data.rfind(b"\n") + 1
            carry = data[end:]
            state = scan(data[:end], self._verifier, resume=state, keep_entries=False)
            if state.problem:
                return state
        return scan(carry, self._verifier, resume=state, keep_entries=False)

    def _adopt(self, state: LogState, inode: int) -> None:
        self._state, self._inode = state, inode
        self._note_pending()

    def _note_pending(self) -> None:
        """Start the checkpoint clock when entries become unsigned; stop it when they are signed."""
        if not self._unsigned:
            self._pending_since = None
        elif self._pending_since is None:
            self._pending_since = self._monotonic()
            self._start_timer()

    def _save_head(self) -> None:
        try:
            save_head(self.path, self._inode, self._state)
        except OSError as exc:
            raise AuditError(write_failure(f"the audit head file {head_path(self.path)}", exc)) from None

    def _write_line(self, line: bytes) -> None:
        """Append one line and fsync it, or leave the log as it was and raise AuditError."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            st = os.fstat(fd)
            try:
                write_all(fd, line)
                os.fsync(fd)
            except OSError as exc:
                message = write_failure(f"the audit log {self.path}", exc)
                try:
                    os.ftruncate(fd, st.st_size)
                    os.fsync(fd)
                except OSError:
                    message += " (a partial line may remain; it is removed as a torn tail on the next open)"
                raise AuditError(message) from None
        finally:
            os.close(fd)
        state = self._state
        state.last_line_start, state.valid_bytes = st.st_size, st.st_size + len(line)
        state.lines += 1
        self._inode = st.st_ino

    def _write(self, body: dict[str, Any]) -> int:
        full = {"time": timestamp(self._clock()), "node": self.node_id, **body}
        entry = make_entry(self._state.next_seq, self._state.head, full)
        self._write_line(entry.line())
        self._state.head, self._state.next_seq = entry.hash, entry.seq + 1
        track_intent(self._state.intents, full)
        self._note_pending()
        if self._unsigned >= self._every:
            self._checkpoint()
        return entry.seq

    def _checkpoint(self) -> None:
        line = checkpoint_line(self._state.next_seq, self._state.head, timestamp(self._clock()),
                               self._signer)
        self._write_line(line)
        self._state.last_checkpoint_count = self._state.next_seq
        self._note_pending()
        side = sidecar_path(self.path)
        try:
            write_atomically(side, line)
        except OSError as exc:
            raise AuditError(write_failure(f"the audit checkpoint file {side}", exc)) from None
        self._save_head()

    def append(self, body: dict[str, Any]) -> int:
        """Write one entry durably and return its sequence number."""
        with self._guard():
            self._catch_up()
            return self._write(body)

    def intent(self, body: dict[str, Any], *, op_id: str | None = None) -> str:
        """Log that an operation starts; returns its op id (fresh unless given), for `outcome`."""
        op_id = op_id or uuid.uuid4().hex
        self.append({**body, "phase": "intent", "op": op_id})
        return op_id

    def outcome(self, op_id: str, body: dict[str, Any], *, outcome: str = "ok") -> int:
        """Log how the operation `op_id` ended; refused unless its intent is open. Returns the seq."""
        with self._guard():
            self._catch_up()
            if op_id not in self._state.intents:
                raise AuditError(f"no open intent {op_id!r} in the audit log {self.path} "
                                 "(unknown, or its outcome is already logged)")
            return self._write({**body, "phase": "outcome", "op": op_id, "outcome": outcome})

    def open_intents(self) -> dict[str, dict[str, Any]]:
        """Operations whose intent is logged (by any process) but not yet their outcome."""
        with self._guard():
            self._catch_up()
            return dict(self._state.intents)

    def checkpoint(self) -> None:
        """Sign the current head now (also done every `checkpoint_every` entries, on a timer and on close)."""
        with self._guard():
            self._catch_up()
            if self._unsigned or not self.path.exists():
                self._checkpoint()

    def sign_if_due(self) -> bool:
        """Sign the head if the oldest unsigned entry is `checkpoint_seconds` old; the timer calls this."""
        with self._guard():
            self._catch_up()
            since = self._pending_since
            if since is None or self._monotonic() - since < self._seconds:
                return False
            self._checkpoint()
            return True

    def _start_timer(self) -> None:
        if self._stopped.is_set():
            return
        if self._timer is None:
            self._timer = threading.Thread(target=self._run_timer, name="audit-checkpoint", daemon=True)
            self._timer.start()
        self._wake.set()

    def _run_timer(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            since = self._pending_since
            self._wake.wait(None if since is None else max(0.0, since + self._seconds - self._monotonic()))
            if self._stopped.is_set():
                return
            try:
                self.sign_if_due()
            except AuditError as exc:  # entries stay unsigned until a later try succeeds
                _log.warning("timed audit checkpoint failed: %s", exc)
                self._stopped.wait(self._seconds)

    def close(self) -> None:
        """Stop the timer and sign what is pending."""
        self._stopped.set()
        self._wake.set()
        if self._timer is not None:
            self._timer.join()
        self.checkpoint()
