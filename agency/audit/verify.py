"""Check an audit log: the chain, every checkpoint signature, and the latest checkpoint.

Stops at the first problem and names the entry or checkpoint and what is
wrong with it: edited, deleted, reordered, truncated, bad signature,
unreadable, non-canonical bytes, an entry of another node, time going
backwards, a duplicate checkpoint, a missing checkpoint file, entries left
unsigned longer than the checkpoint timer allows, or a rollback or rewrite
that a witness saw. A torn last line (a crash in the middle of a write) is a
note, not a problem: the log verifies up to its last complete entry.

Entries with `"phase": "intent"` open an operation `"op"`; one with
`"phase": "outcome"` and the same op closes it. The scan keeps the intents
still open, so that a node can reconcile its store with the log after a crash.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agency.audit.chain import (
    GENESIS,
    Signer,
    Verifier,
    base_message,
    canonical,
    chain_hash,
    checkpoint_message,
    entry_digest,
)

# Entries may stay unsigned this long: the writers' timer (10 s by default) plus room for a slow disk.
UNSIGNED_LIMIT_SECONDS = 70.0
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")  # timestamp(): fixed width, so text order is time order
_FIELDS = {  # each line holds exactly these fields ("mac" is absent from entries of older writers)
    "entry": ({"kind", "seq", "prev", "body", "hash"}, {"mac"}),
    "checkpoint": ({"kind", "count", "head", "time", "signature"}, set()),
    "base": ({"kind", "next_seq", "prev", "time", "signature"}, set()),
}


@dataclass(frozen=True)
class Problem:
    # edited | deleted | reordered | truncated | bad-signature | unreadable | non-canonical | foreign
    # | time-reversed | duplicate-checkpoint | missing-checkpoint | unsigned | rollback
    kind: str
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
    node: str = ""  # whose log: every entry's "node" (the first entry's, unless the reader names it)
    last_time: str = ""  # the latest time of an entry or checkpoint: none may be earlier
    checkpoint_head: bytes = GENESIS  # the head the last checkpoint (or base) signed
    base_time: str = ""  # when the log was pruned ("" if never)
    # (seq, line, h(seq), mac) of the entries after the last checkpoint, in this scan
    unsigned: list[tuple[int, int, bytes, object]] = field(default_factory=list)
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def split_lines(data: bytes) -> tuple[list[bytes], int]:
    """Complete lines, and the length of a torn last line (no newline) if any."""
    *lines, tail = data.split(b"\n")
    return lines, len(tail)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _canonical_line(obj: dict[str, Any], raw: bytes) -> bool:
    """Exactly the fields of its kind, written as the writers write them (sorted keys, no spaces)."""
    required, optional = _FIELDS[obj["kind"]]
    return required <= set(obj) <= required | optional and canonical(obj) == raw


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
         resume: LogState | None = None, keep_entries: bool = True, node: str = "",
         watch: int = -1) -> LogState:
    """Walk the chain; signatures are checked only when a verifier is given.

    With `resume`, `data` is what follows its verified prefix (from byte
    `resume.valid_bytes`) and the walk continues from its head; `resume` is
    left as it was. Without `keep_entries`, bodies and checkpoints are not kept.
    `node` names whose log it is (default: the first entry's node). The chain
    value of entry `watch` is kept in `hashes` even without `keep_hashes`.
    """
    state = LogState(node=node) if resume is None else replace(
        resume, entries=[], hashes={}, checkpoint_lines=[], intents=dict(resume.intents), torn_tail_bytes=0,
        unsigned=[])
    lines, state.torn_tail_bytes = split_lines(data)
    for index, raw in enumerate(lines):
        lineno = state.lines + 1
        obj = _parse(raw)
        kind = obj.get("kind") if obj else None
        problem = None
        if obj is None or kind not in _FIELDS:
            problem = Problem("unreadable", lineno, f"line {lineno} is not a valid audit line (edited?)")
        elif not _canonical_line(obj, raw):
            problem = Problem("non-canonical", lineno, f"line {lineno} ({_name(obj)}) is not in canonical form "
                                                       "(extra, duplicate or reordered fields, or spacing): edited")
        elif kind == "base":
            problem = _base(state, obj, lineno, verifier)
        elif kind == "entry":
            problem = _entry(state, obj, lineno, lines, index, keep_hashes or obj.get("seq") == watch, keep_entries)
        else:
            problem = _checkpoint(state, obj, lineno, verifier, keep_entries)
        if problem:
            state.problem = problem
            return state
        state.lines = lineno
        state.last_line_start = state.valid_bytes
        state.valid_bytes += len(raw) + 1
    return state


def _name(obj: dict[str, Any]) -> str:
    if obj.get("kind") == "entry":
        return f"entry {obj.get('seq')}"
    if obj.get("kind") == "checkpoint":
        return f"checkpoint over {obj.get('count')} entries"
    return "the base line"


def _time(state: LogState, moment: object, lineno: int, what: str) -> Problem | None:
    """Times are well-formed and never go backwards (writers never write one earlier than the last)."""
    if not isinstance(moment, str) or not _TIME.fullmatch(moment):
        return Problem("unreadable", lineno, f"{what} (line {lineno}) has a damaged time")
    if moment < state.last_time:
        return Problem("time-reversed", lineno, f"{what} (line {lineno}) is dated {moment}, before the line "
                                                f"preceding it ({state.last_time}): time went backwards")
    state.last_time = moment
    return None


def _base(state: LogState, obj: dict[str, Any], lineno: int, verifier: Verifier | None) -> Problem | None:
    prev = _hex32(obj, "prev")
    next_seq = obj.get("next_seq")
    moment = obj.get("time")
    if lineno != 1 or prev is None or not isinstance(next_seq, int) or next_seq < 0 \
            or not isinstance(moment, str) or not _TIME.fullmatch(moment):
        return Problem("unreadable", lineno, f"line {lineno}: a base line may only open the log")
    if verifier and not verifier.check(base_message(next_seq, prev, moment), str(obj.get("signature", ""))):
        return Problem("bad-signature", lineno, f"line {lineno}: the base after pruning has a bad signature")
    # A base is a signed statement of the chain at `next_seq`; its time (the pruning) follows the kept lines.
    state.next_seq, state.head, state.base_head, state.checkpoint_head = next_seq, prev, prev, prev
    state.last_checkpoint_count, state.base_time = next_seq, moment
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
    computed = chain_hash(prev, entry_digest(seq, body))
    if prev != state.head or computed != stored:
        return Problem("edited", lineno, f"entry {seq} (line {lineno}): its link to entry {seq - 1} is broken"
                       if prev != state.head else f"entry {seq} (line {lineno}) was edited: contents do not match "
                                                  "its hash")
    problem = _provenance(state, seq, body, lineno)
    if problem:
        return problem
    state.unsigned.append((seq, lineno, computed, obj.get("mac")))
    if keep_entries:
        state.entries.append((seq, body))
    track_intent(state.intents, body)
    if keep_hashes:
        state.hashes[seq] = computed
    state.head, state.next_seq = computed, seq + 1
    return None


def _provenance(state: LogState, seq: int, body: dict[str, Any], lineno: int) -> Problem | None:
    """The entry is of this log's node and not dated before the line preceding it."""
    state.node = state.node or str(body.get("node", ""))
    if body.get("node") != state.node:
        return Problem("foreign", lineno, f"entry {seq} (line {lineno}) was written by node "
                                          f"{str(body.get('node'))[:80]!r}, not by {state.node!r} whose log this is")
    return _time(state, body.get("time"), lineno, f"entry {seq}")


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
    if (state.checkpoints or state.base_time) and count <= state.last_checkpoint_count:
        return Problem("duplicate-checkpoint", lineno, f"checkpoint at line {lineno} repeats the signed state "
                                                       f"over {count} entries (copied line)")
    problem = _time(state, obj.get("time"), lineno, f"checkpoint at line {lineno}")
    if problem:
        return problem
    state.checkpoints += 1
    state.last_checkpoint_count, state.checkpoint_head = count, head
    state.unsigned = []
    if keep_entries:
        state.checkpoint_lines.append(obj)
    return None


@dataclass(frozen=True)
class Witnessed:
    """A checkpoint of this log that a witness cosigned (its signatures already checked)."""

    witness: str
    count: int
    head: bytes
    time: str


@dataclass(frozen=True)
class Verdict:
    state: LogState
    problem: Problem | None
    notes: tuple[str, ...]  # facts the officer should know; never a problem (that is `problem`)

    @property
    def intact(self) -> bool:
        return self.problem is None

    @property
    def open_intents(self) -> dict[str, dict[str, Any]]:
        """Operations whose intent is logged but not their outcome (information, not a problem)."""
        return self.state.intents


def first_seq(state: LogState) -> int:
    """The first entry the log still holds (after a prune, the base's)."""
    return state.entries[0][0] if state.entries else state.next_seq


def sidecar_path(log: Path) -> Path:
    return log.with_name(log.name + ".checkpoint")


def read_checkpoint_file(side: Path, verifier: Verifier) -> tuple[int, bytes] | None:
    """(count, head) of a checkpoint file signed with `verifier`'s key; None if damaged or forged."""
    obj = _parse(side.read_bytes().strip())
    count, head = (obj or {}).get("count"), _hex32(obj or {}, "head")
    if obj is None or not isinstance(count, int) or head is None or not verifier.check(
            checkpoint_message(count, head, str(obj.get("time"))), str(obj.get("signature", ""))):
        return None
    return count, head


def unsigned_mac_problem(state: LogState, signer: Signer) -> Problem | None:
    """For writers: the first entry since the last checkpoint that this node's key did not write."""
    for seq, lineno, chain_value, mac in state.unsigned:
        if not signer.mac_ok(chain_value, mac):
            return Problem("forged", lineno, f"entry {seq} (line {lineno}) is unsigned and was not written by this "
                                             "node (its writer mac does not match): forged, or edited and rechained")
    return None


def verify_log(log: Path, verifier: Verifier, checkpoint: Path | None = None, *, node: str = "",
               now: dt.datetime | None = None, unsigned_limit: float = UNSIGNED_LIMIT_SECONDS,
               witnessed: Iterable[Witnessed] = ()) -> Verdict:
    """The full officer's check: every line, the latest checkpoint file, the unsigned tail, the witnesses."""
    state = scan(log.read_bytes(), verifier, keep_hashes=True, node=node)
    notes = []
    if state.torn_tail_bytes:
        notes.append(f"torn tail: the last {state.torn_tail_bytes} bytes are an incomplete write "
                     f"(crash?); the log verifies up to entry {state.next_seq - 1}")
    if state.base_time:
        notes.append(f"pruned on {state.base_time}: entries before {first_seq(state)} were removed (a signed base "
                     "line opens the log; its log.pruned entry says by whom)")
    if state.problem:
        return Verdict(state, state.problem, tuple(notes))
    problem, signed = _against_checkpoint_file(state, checkpoint or sidecar_path(log), verifier)
    problem = problem or _unsigned_tail(state, signed, now or dt.datetime.now(dt.UTC), unsigned_limit, notes)
    for seen in witnessed:
        problem = problem or _against_witness(state, seen)
        if not problem:
            notes.append(f"witness {seen.witness} cosigned this log at {seen.count} entries ({seen.time}): consistent")
    return Verdict(state, problem, tuple(notes))


def _against_checkpoint_file(state: LogState, side: Path, verifier: Verifier) -> tuple[Problem | None, int]:
    """Truncation and forks against the latest checkpoint; returns the problem and how many entries are signed."""
    signed = state.last_checkpoint_count
    if not side.exists():
        if state.checkpoints or state.base_time:
            return Problem("missing-checkpoint", 0, f"the checkpoint file {side} is missing: truncation of the log "
                                                    "cannot be ruled out; restore it from a backup"), signed
        return None, signed
    latest = read_checkpoint_file(side, verifier)
    if latest is None:
        return Problem("bad-signature", 0, f"checkpoint file {side} is damaged or has a bad signature"), signed
    count, head = latest
    if count > state.next_seq:
        return Problem("truncated", 0, f"truncated: the log ends after {state.next_seq} entries but the latest "
                                       f"checkpoint covers {count}"), signed
    if count and state.hashes.get(count - 1) != head:
        return Problem("edited", 0, f"entry {count - 1} differs from the one the latest checkpoint signed"), signed
    return None, max(count, signed)


def _unsigned_tail(state: LogState, signed: int, now: dt.datetime, limit: float, notes: list[str]
                   ) -> Problem | None:
    """Entries after the last signature are only as good as the file: allowed for the timer's span, no longer."""
    if state.next_seq <= signed:
        return None
    first = next((seq, body) for seq, body in state.entries if seq == signed)
    moment = str(first[1].get("time"))
    age = (now - dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))).total_seconds()
    span = f"entries {signed} to {state.next_seq - 1}" if state.next_seq - signed > 1 else f"entry {signed}"
    if age > limit:
        return Problem("unsigned", 0, f"{span} unsigned since {moment} (more than {limit:g} s, the checkpoint "
                                      "timer's limit): a writer died before signing, or they were deleted, edited or "
                                      "forged in the unsigned window")
    notes.append(f"{span} chained but not yet signed (written {age:.0f} s ago, within the timer's {limit:g} s)")
    return None


def _against_witness(state: LogState, seen: Witnessed) -> Problem | None:
    if seen.count > state.next_seq:
        return Problem("rollback", 0, f"rolled back: witness {seen.witness} cosigned this log at {seen.count} entries "
                                      f"({seen.time}) but it holds {state.next_seq}")
    if seen.count == 0 or seen.count - 1 < first_seq(state):
        return None  # pruned since: nothing left to compare (docs/audit.md)
    if state.hashes.get(seen.count - 1) != seen.head:
        return Problem("rollback", 0, f"rewritten: entry {seen.count - 1} differs from the one witness {seen.witness} "
                                      f"cosigned ({seen.time})")
    return None
