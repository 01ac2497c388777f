"""Export one case's entries with the proof that they belong to the signed log.

The bundle holds the case's entries in full, the digests d(n) of every other
entry between the first case entry and a signed checkpoint, the chain value
before the first case entry, and that checkpoint. Re-hashing the chain from
there must reach the signed head: no other case's contents are disclosed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agency.audit.chain import Verifier, chain_hash, checkpoint_message, entry_digest
from agency.audit.verify import verify_log
from psi.errors import InputError

FORMAT = "psi-audit-export-v1"


def export_case(log: Path, verifier: Verifier, case: str) -> dict[str, Any]:
    """The bundle for `case`; the log must verify first."""
    verdict = verify_log(log, verifier)
    if not verdict.intact or verdict.problem:
        raise InputError(f"the log does not verify: {verdict.problem.message if verdict.problem else ''}")
    state = verdict.state
    case_seqs = [seq for seq, body in state.entries if body.get("case") == case]
    if not case_seqs:
        raise InputError(f"no entries for case '{case}'")
    first, last = case_seqs[0], case_seqs[-1]
    covering = [c for c in state.checkpoint_lines if c["count"] > last]
    if not covering:
        raise InputError("the case's latest entries are not yet covered by a signed checkpoint; "
                         "stop the node or wait for its next checkpoint")
    checkpoint = covering[0]
    bodies = dict(state.entries)
    wanted = set(case_seqs)
    items: list[dict[str, Any]] = []
    for seq in range(first, checkpoint["count"]):
        if seq in wanted:
            items.append({"seq": seq, "body": bodies[seq]})
        else:
            items.append({"seq": seq, "digest": entry_digest(seq, bodies[seq]).hex()})
    anchor = state.hashes.get(first - 1, state.base_head).hex()
    return {"format": FORMAT, "log": log.name, "case": case, "anchor": anchor, "items": items,
            "checkpoint": checkpoint}


def verify_export(bundle: dict[str, Any], verifier: Verifier) -> str:
    """Check a bundle: the chain from its anchor reaches the signed checkpoint.

    Returns a one-line summary; raises InputError saying what is wrong.
    """
    if bundle.get("format") != FORMAT:
        raise InputError("not a psi audit export")
    try:
        head = bytes.fromhex(bundle["anchor"])
        expected = bundle["items"][0]["seq"]
        case_entries = 0
        for item in bundle["items"]:
            if item["seq"] != expected:
                raise InputError(f"item for entry {item['seq']} is out of order")
            if "body" in item:
                if item["body"].get("case") != bundle["case"]:
                    raise InputError(f"entry {expected} is not of case {bundle['case']}")
                digest = entry_digest(expected, item["body"])
                case_entries += 1
            else:
                digest = bytes.fromhex(item["digest"])
            head = chain_hash(head, digest)
            expected += 1
        checkpoint = bundle["checkpoint"]
        if checkpoint["count"] != expected or bytes.fromhex(checkpoint["head"]) != head:
            raise InputError("the entries do not hash to the checkpoint's head (edited or incomplete)")
        if not verifier.check(checkpoint_message(expected, head, str(checkpoint["time"])),
                              checkpoint["signature"]):
            raise InputError("the checkpoint's signature is bad")
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"the bundle is damaged ({type(exc).__name__})") from None
    return f"{case_entries} entries of case {bundle['case']} belong to the log signed at entry {expected - 1}"
