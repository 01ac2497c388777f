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

A writer never signs over a log it cannot vouch for. It refuses (AuditError,
nothing written) when the log shrank or was replaced under it, when the
prefix `LOG.head` names does not end in a checkpoint signed with the node's
key, when `LOG.checkpoint` holds a signed state the log no longer has, when
an entry is of another node or dated before the one preceding it, and when an
unsigned entry lacks the writer mac only the node's key can make (a forgery,
or an edit rechained in the unsigned window).
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from agency.audit.chain import (
    Signer,
    Verifier,
    base_message,
    checkpoint_line,
    checkpoint_message,
    make_entry,
)
from agency.audit.verify import (
    LogState,
    read_checkpoint_file,
    scan,
    sidecar_path,
    track_intent,
    unsigned_mac_problem,
)
from agency.file_lock import locked
from psi.errors import AuditError

Clock = Callable[[], dt.datetime]
_log = logging.getLogger(__name__)
_HEAD_FORMAT = "psi-audit-head-v2"
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

    {"format": "psi-audit-head-v2", "inode": ..., "offset": bytes verified,
     "last_line": offset of the prefix's last line, "lines": lines in the prefix,
     "next_seq": ..., "head": h(next_seq - 1) hex, "last_checkpoint_count": ...,
     "open_intents": {op id: intent body}, "node": ..., "last_time": ...}

    The prefix always ends with a checkpoint (or a lone base), whose signature
    a writer checks before it trusts the prefix.
    """

    inode: int
    state: LogState

    def dump(self) -> bytes:
        s = self.state
        return json.dumps({"format": _HEAD_FORMAT, "inode": self.inode, "offset": s.valid_bytes,
                           "last_line": s.last_line_start, "lines": s.lines, "next_seq": s.next_seq,
                           "head": s.head.hex(), "last_checkpoint_count": s.last_checkpoint_count,
                           "open_intents": s.intents, "node": s.node, "last_time": s.last_time},
                          sort_keys=True).encode() + b"\n"

    @classmethod
    def load(cls, data: bytes) -> Head | None:
        try:
            doc = json.loads(data)
            if doc["format"] != _HEAD_FORMAT:
                return None
            state = LogState(next_seq=doc["next_seq"], head=bytes.fromhex(doc["head"]),
                             last_checkpoint_count=doc["last_checkpoint_count"], valid_bytes=doc["offset"],
                             lines=doc["lines"], last_line_start=doc["last_line"], intents=doc["open_intents"],
                             node=str(doc["node"]), last_time=str(doc["last_time"]))
            state.checkpoint_head = state.head
            numbers = (doc["inode"], state.next_seq, state.last_checkpoint_count, state.valid_bytes,
                       state.lines, state.last_line_start)
            if not all(isinstance(n, int) and n >= 0 for n in numbers) or len(state.head) != 32 \
                    or not isinstance(state.intents, dict) or state.last_line_start > state.valid_bytes \
                    or state.last_checkpoint_count != state.next_seq:
                return None
            return cls(doc["inode"], state)
        except (ValueError, KeyError, TypeError):
            return None


def save_head(log: Path, inode: int, state: LogState) -> None:
    """Record a verified prefix; not fsynced: a lost or stale head only costs a longer verification."""
    write_atomically(head_path(log), Head(inode, state).dump(), durable=False)


def _ends_head(raw: bytes, state: LogState, verifier: Verifier) -> bool:
    """Whether `raw`, the prefix's last line as the file holds it now, is a signature of the chain at `state`."""
    try:
        obj = json.loads(raw)
        kind, moment, signature = obj["kind"], str(obj.get("time")), str(obj.get("signature", ""))
        if kind == "checkpoint":
            return bool(obj["count"] == state.next_seq and bytes.fromhex(obj["head"]) == state.head
                        and verifier.check(checkpoint_message(state.next_seq, state.head, moment), signature))
        return bool(kind == "base" and state.lines == 1 and obj["next_seq"] == state.next_seq
                    and bytes.fromhex(obj["prev"]) == state.head
                    and verifier.check(base_message(state.next_seq, state.head, moment), signature))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def _parse_line(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _merge(before: LogState, after: LogState) -> LogState:
    """A resumed scan keeps only its own hashes and unsigned entries: carry the earlier chunks' over."""
    after.hashes = {**before.hashes, **after.hashes}
    if after.checkpoints == before.checkpoints:  # no checkpoint since: the earlier unsigned entries still are
        after.unsigned = before.unsigned + after.unsigned
    return after


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
        self._state = LogState(node=node_id)
        self._inode = -1  # of the log this process verified (-1: none yet)
        self._last_line = b""  # the verified prefix's last line (and the newline before it), as written
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

    def _refuse(self, what: str) -> AuditError:
        return AuditError(f"audit log {self.path}: {what}; nothing was written. Run `psi audit verify` and restore "
                          "the log and its checkpoint file from a backup before this node writes to it again")

    def _catch_up(self) -> None:
        """Verify what other processes appended since; repair a torn tail once. Refuses a tampered log."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._inode != -1 or sidecar_path(self.path).exists():
                raise self._refuse("the log is gone but it was written before (its checkpoint file remains, "
                                   "or this process wrote it)") from None
            self._adopt(LogState(node=self.node_id), -1)
            return
        fresh = st.st_ino != self._inode
        if not fresh and (st.st_size < self._state.valid_bytes or self._prefix_end(self._state) != self._last_line):
            raise self._refuse(f"it shrank or was rewritten since this process verified it up to entry "
                               f"{self._state.next_seq - 1}")
        # Work on a copy: this process's verified state changes only once the file passed every check.
        state = self._state
        if fresh:
            state = self._verified_head(st) or LogState(node=self.node_id)
        if st.st_size != state.valid_bytes:
            with self.path.open("rb") as handle:
                state = self._verify_from(handle, replace(state, unsigned=[]))
            problem = state.problem or unsigned_mac_problem(state, self._signer)
            if problem:
                raise self._refuse(f"it fails verification ({problem.message})")
        if fresh:
            self._check_signed_state(state, None if self._inode == -1 else self._state)
        torn, state.torn_tail_bytes = state.torn_tail_bytes, 0  # repaired below, once
        self._adopt(state, st.st_ino)
        self._last_line = self._prefix_end(state)
        if fresh and not self._unsigned:
            self._save_head()
        if torn:
            os.truncate(self.path, state.valid_bytes)
            self._write({"operation": "log.recovered", "outcome": "ok",
                         "message": f"removed a torn tail of {torn} bytes left by an interrupted write"})

    def _check_signed_state(self, state: LogState, before: LogState | None) -> None:
        """A newly opened file (`state`) must hold the latest signed state and extend what this process verified."""
        side = sidecar_path(self.path)
        if not side.exists():
            if state.last_checkpoint_count:
                raise self._refuse(f"its checkpoint file {side} is missing")
        else:
            latest = read_checkpoint_file(side, self._verifier)
            if latest is None:
                raise self._refuse(f"its checkpoint file {side} is damaged or not signed with this node's key")
            count, head = latest
            if count > state.last_checkpoint_count or (count == state.last_checkpoint_count
                                                       and head != state.checkpoint_head):
                raise self._refuse(f"the log lacks the signed state over {count} entries that {side} holds "
                                   "(truncated, rolled back or forked)")
        if before is not None and before.next_seq and not self._continues(before):
            raise self._refuse(f"the replaced log does not continue the chain this process verified up to "
                               f"entry {before.next_seq - 1}")

    def _continues(self, before: LogState) -> bool:
        """Whether the file now (pruned by another process) holds the chain `before` ended, or a signed cut after it."""
        with self.path.open("rb") as handle:
            first = _parse_line(handle.readline())
            if first.get("kind") == "base" and isinstance(first.get("next_seq"), int) \
                    and first["next_seq"] >= before.next_seq:  # the cut is at or after `before`'s end: cheap
                try:
                    prev = bytes.fromhex(str(first.get("prev", "")))
                except ValueError:
                    return False
                signed = self._verifier.check(base_message(first["next_seq"], prev, str(first.get("time"))),
                                              str(first.get("signature", "")))
                return signed and (first["next_seq"] > before.next_seq or prev == before.head)
            full = self._verify_from(handle, LogState(node=self.node_id), watch=before.next_seq - 1)
        return full.next_seq >= before.next_seq and full.hashes.get(before.next_seq - 1) == before.head

    def _prefix_end(self, state: LogState) -> bytes:
        """The verified prefix's last line as the file holds it now, with the newline before it (b"" if none)."""
        if not state.valid_bytes:
            return b""
        with self.path.open("rb") as handle:
            handle.seek(max(state.last_line_start - 1, 0))
            return handle.read(state.valid_bytes - handle.tell())

    def _verified_head(self, st: os.stat_result) -> LogState | None:
        """The prefix `LOG.head` records, if the log still ends it there with a signature; None: verify it all."""
        try:
            head = Head.load(head_path(self.path).read_bytes())
        except OSError:  # missing or unreadable: a cache, so verify in full and rewrite it
            return None
        if head is None or head.inode != st.st_ino or head.state.valid_bytes > st.st_size \
                or head.state.node != self.node_id:
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

    def _verify_from(self, handle: BinaryIO, state: LogState, watch: int = -1) -> LogState:
        """Verify the log from the end of `state`'s prefix on, chunk by chunk."""
        handle.seek(state.valid_bytes)
        carry = b""
        while chunk := handle.read(_CHUNK):
            data = carry + chunk
            end = data.rfind(b"\n") + 1
            carry = data[end:]
            state = _merge(state, scan(data[:end], self._verifier, resume=state, keep_entries=False, watch=watch))
            if state.problem:
                return state
        return _merge(state, scan(carry, self._verifier, resume=state, keep_entries=False, watch=watch))

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
        self._last_line = (b"\n" if st.st_size else b"") + line
        state.last_line_start, state.valid_bytes = st.st_size, st.st_size + len(line)
        state.lines += 1
        self._inode = st.st_ino

    def _now(self) -> str:
        """The clock's time, but never before the log's latest (a clock stepped back must not reorder it)."""
        moment = max(timestamp(self._clock()), self._state.last_time)
        self._state.last_time = moment
        return moment

    def _write(self, body: dict[str, Any]) -> int:
        full = {"time": self._now(), "node": self.node_id, **body}
        entry = make_entry(self._state.next_seq, self._state.head, full)
        self._write_line(entry.line(self._signer))
        self._state.head, self._state.next_seq = entry.hash, entry.seq + 1
        track_intent(self._state.intents, full)
        self._note_pending()
        if self._unsigned >= self._every:
            self._checkpoint()
        return entry.seq

    def _checkpoint(self) -> None:
        line = checkpoint_line(self._state.next_seq, self._state.head, self._now(), self._signer)
        self._write_line(line)
        self._state.last_checkpoint_count, self._state.checkpoint_head = self._state.next_seq, self._state.head
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
