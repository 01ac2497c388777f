"""Retention: drop entries older than a date, keeping the rest verifiable.

The pruned log opens with a signed base line carrying the chain value of the
last dropped entry, then the kept lines unchanged, then a `log.pruned` entry
saying what was dropped, by whom and when, and a fresh signed checkpoint.
Entries from the oldest intent still open on are kept, whatever their date,
so that every open intent stays in the log until its outcome is written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from agency.audit.chain import Signer, Verifier, base_line, checkpoint_line, make_entry
from agency.audit.log import Clock, save_head, timestamp, utc_now, write_atomically, write_failure
from agency.audit.verify import scan, sidecar_path, split_lines
from agency.file_lock import locked
from psi.errors import AuditError, InputError


@dataclass(frozen=True)
class PruneResult:
    pruned: int
    kept: int
    first_kept_seq: int


def prune_log(log: Path, signer: Signer, node_id: str, before: dt.date, operator: str,
              clock: Clock = utc_now) -> PruneResult:
    """Remove entries dated before `before` (UTC); the log must verify first."""
    with locked(log):
        data = log.read_bytes()
        state = scan(data, Verifier(signer.public_pem()), keep_hashes=True)
        if state.problem:
            raise InputError(f"the log does not verify ({state.problem.message}); nothing pruned")
        cutoff = before.isoformat()
        dropped = [seq for seq, body in state.entries if str(body.get("time", ""))[:10] < cutoff]
        first_seq = state.entries[0][0] if state.entries else state.next_seq
        open_seqs = [seq for seq, body in state.entries
                     if body.get("phase") == "intent" and body.get("op") in state.intents]
        keep_from = min([dropped[-1] + 1 if dropped else first_seq, *open_seqs])
        dropped = [seq for seq in dropped if seq < keep_from]
        kept_lines = [raw + b"\n" for raw in split_lines(data)[0] if _kept(raw, keep_from)]
        now = timestamp(clock())
        prev = state.hashes.get(keep_from - 1, state.base_head)
        out = [base_line(keep_from, prev, now, signer), *kept_lines]
        body = {"time": now, "node": node_id, "operation": "log.pruned", "operator": operator,
                "pruned_before": cutoff, "pruned_entries": len(dropped),
                "pruned_seqs": [first_seq, keep_from - 1] if dropped else [], "outcome": "ok", "status": "OK"}
        entry = make_entry(state.next_seq, state.head, body)
        checkpoint = checkpoint_line(entry.seq + 1, entry.hash, now, signer)
        out += [entry.line(), checkpoint]
        pruned = b"".join(out)
        for path, data in ((log, pruned), (sidecar_path(log), checkpoint)):
            try:
                write_atomically(path, data)
            except OSError as exc:
                raise AuditError(write_failure(f"the pruned audit log {path}", exc)) from None
        # The old head describes the replaced file: record the new one (signatures checked above).
        try:
            save_head(log, os.stat(log).st_ino, scan(pruned, keep_entries=False))
        except OSError as exc:
            raise AuditError(write_failure(f"the audit head file of {log}", exc)) from None
    return PruneResult(len(dropped), state.next_seq - keep_from, keep_from)


def _kept(raw: bytes, keep_from: int) -> bool:
    """Entries from `keep_from` on, and the checkpoints that cover at least one of them."""
    obj = json.loads(raw)
    if obj["kind"] == "entry":
        return bool(obj["seq"] >= keep_from)
    return bool(obj["kind"] == "checkpoint" and obj["count"] > keep_from)
