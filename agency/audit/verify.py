"""Check an audit log: the chain, every checkpoint signature, and the latest checkpoint.

Stops at the first problem and names the entry and what is wrong with it:
edited, deleted, reordered, truncated, bad signature, unreadable. A torn
last line (a crash in the middle of a write) is reported, not counted as
tampering: the log verifies up to its last complete entry.

Entries with `"phase": "intent"` open an operation `"op"`; one with
`"phase": "outcome"` and the same op closes it. The scan keeps the intents
still open, so that a node can reconcile its store with the log after a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agency.audit.chain import (
    GENESIS,
    Verifier,
    base_message,
    chain_hash,
    checkpoint_message,
    entry_digest,
)


@dataclass(frozen=True)
class Problem:
    kind: str  # edited | deleted | reordered | truncated | bad-signature | unreadable
    line: int
    message: str


@dataclass
class LogState:
    """What a scan found: the chain's end and the lines, as far as they verified."""

    next_seq: int = 0
    head: bytes = GENESIS
    base_head: bytes = GENESIS  # h(first seq - 1): zeros, or the base line's after a prune
    entries: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (seq, body)
    hashes: dict[int, bytes] = field(default_factory=dict)  # seq -> h(seq)
    checkpoints: int = 0
    last_checkpoint_count: int = 0
    checkpoint_lines: list[dict[str, Any]] = field(default_factory=list)
    torn_tail_bytes: int = 0
    valid_bytes: int = 0  # length of the verified prefix, up to the last complete line
    lines: int = 0  # complete lines in the verified prefix
    last_line_start: int = 0  # byte offset of the prefix's last line
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)  # open op id -> intent body
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def split_lines(data: bytes) -> tuple[list[bytes], int]:
    """Complete lines, and the length of a torn last line (no newline) if any."""
    *lines, tail = data.split(b"\n")
    return lines, len(tail)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _hex32(obj: dict[str, Any], name: str) -> bytes | None:
    try:
        value = bytes.fromhex(obj[name])
    except (KeyError, TypeError, ValueError):
        return None
    return value if len(value) == 32 else None


def _later_seqs(lines: list[bytes], start: int) -> set[int]:
    seqs = set()
    for raw in lines[start:]:
        obj = _parse(raw)
        if obj and obj.get("kind") == "entry" and isinstance(obj.get("seq"), int):
            seqs.add(obj["seq"])
    return seqs


def track_intent(intents: dict[str, dict[str, Any]], body: dict[str, Any]) -> None:
    """Open or close the operation an entry's body names, if any."""
    op = body.get("op")
    if not isinstance(op, str):
        return
    if body.get("phase") == "intent":
        intents[op] = body
    elif body.get("phase") == "outcome":
        intents.pop(op, None)


def scan(data: bytes, verifier: Verifier | None = None, keep_hashes: bool = False, *,
         resume: LogState | None = None, keep_entries: bool = True) -> LogState:
    """Walk the chain; signatures are checked only when a verifier is given.

    With `resume`, `data` is what follows its verified prefix (from byte
    `resume.valid_bytes`) and the walk continues from its head; `resume` is
    left as it was. Without `keep_entries`, bodies and checkpoints are not kept.
    """
    state = LogState() if resume is None else replace(
        resume, entries=[], hashes={}, checkpoint_lines=[], intents=dict(resume.intents), torn_tail_bytes=0)
    lines, state.torn_tail_bytes = split_lines(data)
    for index, raw in enumerate(lines):
        lineno = state.lines + 1
        obj = _parse(raw)
        kind = obj.get("kind") if obj else None
        problem = None
        if obj is None or kind not in ("entry", "checkpoint", "base"):
            problem = Problem("unreadable", lineno, f"line {lineno} is not a valid audit line (edited?)")
        elif kind == "base":
            problem = _base(state, obj, lineno, verifier)
        elif kind == "entry":
            problem = _entry(state, obj, lineno, lines, index, keep_hashes, keep_entries)
        else:
            problem = _checkpoint(state, obj, lineno, verifier, keep_entries)
        if problem:
            state.problem = problem
            return state
        state.lines = lineno
        state.last_line_start = state.valid_bytes
        state.valid_bytes += len(raw) + 1
    return state


def _base(state: LogState, obj: dict[str, Any], lineno: int, verifier: Verifier | None) -> Problem | None:
    prev = _hex32(obj, "prev")
    next_seq = obj.get("next_seq")
    if lineno != 1 or prev is None or not isinstance(next_seq, int):
        return Problem("unreadable", lineno, f"line {lineno}: a base line may only open the log")
    if verifier and not verifier.check(base_message(next_seq, prev, str(obj.get("time"))),
                                       str(obj.get("signature", ""))):
        return Problem("bad-signature", lineno, f"line {lineno}: the base after pruning has a bad signature")
    state.next_seq, state.head, state.base_head = next_seq, prev, prev
    return None


def _entry(state: LogState, obj: dict[str, Any], lineno: int, lines: list[bytes], index: int,
           keep_hashes: bool, keep_entries: bool) -> Problem | None:
    seq, body, prev, stored = obj.get("seq"), obj.get("body"), _hex32(obj, "prev"), _hex32(obj, "hash")
    if not isinstance(seq, int) or not isinstance(body, dict) or prev is None or stored is None:
        return Problem("unreadable", lineno, f"line {lineno}: entry fields are damaged (edited?)")
    expected = state.next_seq
    if seq != expected:
        if seq > expected and expected not in _later_seqs(lines, index + 1):
            what = f"entry {expected}" if seq == expected + 1 else f"entries {expected} to {seq - 1}"
            return Problem("deleted", lineno, f"{what} deleted: line {lineno} holds entry {seq}")
        return Problem("reordered", lineno, f"entry {seq} at line {lineno} is out of order "
                                            f"(entry {expected} expected)")
    if prev != state.head:
        return Problem("edited", lineno, f"entry {seq} (line {lineno}): its link to entry {seq - 1} is broken")
    computed = chain_hash(prev, entry_digest(seq, body))
    if computed != stored:
        return Problem("edited", lineno, f"entry {seq} (line {lineno}) was edited: contents do not match its hash")
    if keep_entries:
        state.entries.append((seq, body))
    track_intent(state.intents, body)
    if keep_hashes:
        state.hashes[seq] = computed
    state.head, state.next_seq = computed, seq + 1
    return None


def _checkpoint(state: LogState, obj: dict[str, Any], lineno: int, verifier: Verifier | None,
                keep_entries: bool) -> Problem | None:
    count, head = obj.get("count"), _hex32(obj, "head")
    if not isinstance(count, int) or head is None:
        return Problem("unreadable", lineno, f"line {lineno}: checkpoint fields are damaged (edited?)")
    if count != state.next_seq or head != state.head:
        return Problem("edited", lineno, f"checkpoint at line {lineno} does not match the chain "
                                         f"(it covers {count} entries; the chain has {state.next_seq})")
    if verifier and not verifier.check(checkpoint_message(count, head, str(obj.get("time"))),
                                       str(obj.get("signature", ""))):
        return Problem("bad-signature", lineno,
                       f"checkpoint at line {lineno} (after entry {count - 1}) has a bad signature")
    state.checkpoints += 1
    state.last_checkpoint_count = count
    if keep_entries:
        state.checkpoint_lines.append(obj)
    return None


@dataclass(frozen=True)
class Verdict:
    state: LogState
    problem: Problem | None
    warnings: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return self.problem is None

    @property
    def open_intents(self) -> dict[str, dict[str, Any]]:
        """Operations whose intent is logged but not their outcome (information, not a problem)."""
        return self.state.intents


def sidecar_path(log: Path) -> Path:
    return log.with_name(log.name + ".checkpoint")


def verify_log(log: Path, verifier: Verifier, checkpoint: Path | None = None) -> Verdict:
    """The full officer's check, including truncation against the latest checkpoint file."""
    state = scan(log.read_bytes(), verifier, keep_hashes=True)
    warnings = []
    if state.torn_tail_bytes:
        warnings.append(f"torn tail: the last {state.torn_tail_bytes} bytes are an incomplete write "
                        f"(crash?); the log verifies up to entry {state.next_seq - 1}")
    if state.problem:
        return Verdict(state, state.problem, tuple(warnings))
    side = checkpoint or sidecar_path(log)
    if not side.exists():
        warnings.append(f"no checkpoint file {side}: truncation of the log's end cannot be detected")
        return Verdict(state, None, tuple(warnings))
    obj = _parse(side.read_bytes().strip())
    count, head = (obj or {}).get("count"), _hex32(obj or {}, "head")
    if obj is None or not isinstance(count, int) or head is None or not verifier.check(
            checkpoint_message(count, head, str(obj.get("time"))), str(obj.get("signature", ""))):
        return Verdict(state, Problem("bad-signature", 0, f"checkpoint file {side} is damaged or "
                                                          "has a bad signature"), tuple(warnings))
    if count > state.next_seq:
        return Verdict(state, Problem("truncated", 0, f"truncated: the log ends after {state.next_seq} "
                                      f"entries but the latest checkpoint covers {count}"), tuple(warnings))
    if count and state.hashes.get(count - 1) != head:
        return Verdict(state, Problem("edited", 0, f"entry {count - 1} differs from the one the latest "
                                                   "checkpoint signed"), tuple(warnings))
    unsigned = state.next_seq - max(count, state.last_checkpoint_count)
    if unsigned:
        warnings.append(f"{unsigned} entries after the last checkpoint are chained but not yet signed")
    return Verdict(state, None, tuple(warnings))
