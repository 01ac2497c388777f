"""Retention: drop the entries a signed checkpoint covers, keeping the rest verifiable.

What goes is chosen by sequence number and signed checkpoint, never by the
entries' own timestamps (a forged or back-dated entry cannot make itself, or
others, disappear): the cut is the latest checkpoint over at most
`before_seq` entries, or the latest one signed before a date. The log must
verify in full first, and its unsigned tail must carry this node's writer mac.

The pruned log opens with a signed base line carrying the chain value of the
last dropped entry, then the kept lines unchanged, then a `log.pruned` entry
saying what was dropped, by whom and when, and a fresh signed checkpoint.
Entries from the oldest intent still open on are kept, so that every open
intent stays in the log until its outcome is written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from agency.audit.chain import Signer, Verifier, base_line, checkpoint_line, make_entry
from agency.audit.log import Clock, save_head, timestamp, utc_now, write_atomically, write_failure
from agency.audit.verify import first_seq, scan, sidecar_path, split_lines, unsigned_mac_problem, verify_log
from agency.file_lock import locked
from psi.errors import AuditError, InputError


@dataclass(frozen=True)
class PruneResult:
    pruned: int
    kept: int
    first_kept_seq: int


def prune_log(log: Path, signer: Signer, node_id: str, before: dt.date | None, operator: str,
              clock: Clock = utc_now, *, before_seq: int | None = None) -> PruneResult:
    """Drop the entries up to the chosen checkpoint (see above); refuses a log that does not verify."""
    with locked(log):
        verdict = verify_log(log, Verifier(signer.public_pem()), node=node_id, now=clock())
        state = verdict.state
        problem = verdict.problem or unsigned_mac_problem(state, signer)
        if problem:
            raise InputError(f"the log does not verify ({problem.message}); nothing pruned")
        data = log.read_bytes()
        first = first_seq(state)
        if before_seq is not None:
            cuts = [c["count"] for c in state.checkpoint_lines if c["count"] <= before_seq]
        elif before is not None:
            cuts = [c["count"] for c in state.checkpoint_lines if c["time"][:10] < before.isoformat()]
        else:
            raise InputError("say up to which entry (before_seq) or signed day (before) to prune")
        open_seqs = [seq for seq, body in state.entries
                     if body.get("phase") == "intent" and body.get("op") in state.intents]
        keep_from = max(first, min([max(cuts, default=first), *open_seqs]))
        dropped = keep_from - first
        kept_lines = [raw + b"\n" for raw in split_lines(data)[0] if _kept(raw, keep_from)]
        now = max(timestamp(clock()), state.last_time)
        prev = state.hashes.get(keep_from - 1, state.base_head)
        out = [base_line(keep_from, prev, now, signer), *kept_lines]
        body = {"time": now, "node": node_id, "operation": "log.pruned", "operator": operator,
                "pruned_entries": dropped, "pruned_seqs": [first, keep_from - 1] if dropped else [],
                "cut_at_checkpoint": keep_from, "outcome": "ok", "status": "OK"}
        entry = make_entry(state.next_seq, state.head, body)
        checkpoint = checkpoint_line(entry.seq + 1, entry.hash, now, signer)
        out += [entry.line(signer), checkpoint]
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
    return PruneResult(dropped, state.next_seq - keep_from, keep_from)


def _kept(raw: bytes, keep_from: int) -> bool:
    """Entries from `keep_from` on, and the checkpoints that cover at least one of them."""
    obj = json.loads(raw)
    if obj["kind"] == "entry":
        return bool(obj["seq"] >= keep_from)
    return bool(obj["kind"] == "checkpoint" and obj["count"] > keep_from)
