"""Witnesses: partners cosign a node's checkpoints, so a rollback or a complete rewrite is caught.

Modelled on C2SP tlog-checkpoint / tlog-cosignature and transparency-dev's
witness, over our hash chain instead of a Merkle tree (docs/audit.md):

- The node hands a partner its latest checkpoint (count, head, time and its
  signature, as in its log), the size the partner last cosigned (`old_size`)
  and the proof: the entry digests d(old_size) .. d(count - 1).
- The witness checks the node's signature with the key it pinned on first
  contact, folds the digests onto the head it cosigned before (append-only:
  h(count - 1) must come out), and signs

      cosignature/v1
      time <unix seconds>
      psi-audit/<origin>
      <count>
      <base64 of head>

  with its own audit key. `origin` is the node id from the caller's
  certificate, never from the request.
- It keeps, per origin, one file `witness/<origin>.json` in its data dir: the
  node's key, the checkpoint and the cosignature. That file is also the bundle
  `psi audit verify --witness` reads.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agency.audit.chain import (
    Signer,
    Verifier,
    chain_hash,
    checkpoint_message,
    entry_digest,
    fingerprint,
)
from agency.audit.log import write_atomically, write_failure
from agency.audit.verify import Witnessed, read_checkpoint_file, scan, sidecar_path
from agency.file_lock import locked
from psi.errors import AuditError, InputError

FORMAT = "psi-witness-v1"
MAX_PROOF = 1 << 20  # digests per hand-over: a node witnessed at least this often needs no more
_ORIGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Checkpoint:
    """A node's signed checkpoint as its log holds it."""

    count: int
    head: bytes
    time: str
    signature: str

    def valid(self, verifier: Verifier) -> bool:
        return verifier.check(checkpoint_message(self.count, self.head, self.time), self.signature)

    def as_json(self) -> dict[str, Any]:
        return {"kind": "checkpoint", "count": self.count, "head": self.head.hex(), "time": self.time,
                "signature": self.signature}


class ConflictError(InputError):
    """The node's `old_size` is not what this witness cosigned last: resend the proof from `known_size`."""

    def __init__(self, known_size: int) -> None:
        super().__init__(f"the witness last cosigned {known_size} entries")
        self.known_size = known_size


def note_body(origin: str, count: int, head: bytes) -> bytes:
    """The checkpoint as a C2SP note body: origin, size, base64 head."""
    return f"psi-audit/{origin}\n{count}\n{base64.b64encode(head).decode()}\n".encode()


def cosignature_message(origin: str, count: int, head: bytes, moment: int) -> bytes:
    return f"cosignature/v1\ntime {moment}\n".encode() + note_body(origin, count, head)


def state_path(data_dir: Path, origin: str) -> Path:
    if not _ORIGIN.fullmatch(origin):
        raise InputError("a witnessed node id must be letters, digits, '.', '_' or '-'")
    return data_dir / "witness" / f"{origin}.json"


def cosign(data_dir: Path, witness_id: str, signer: Signer, origin: str, log_key_pem: str, checkpoint: Checkpoint,
           old_size: int, proof: list[bytes], now: Callable[[], dt.datetime]) -> dict[str, Any]:
    """Cosign `origin`'s checkpoint if it extends what this witness cosigned before; returns the new bundle.

    Raises ConflictError (resend from its size), or InputError naming a bad signature, a changed key,
    a rollback or a fork: those the caller logs, since they are what witnesses exist to catch.
    """
    path = state_path(data_dir, origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        known = _load(path)
        if known is not None and fingerprint(known["log_key"]) != fingerprint(log_key_pem):
            raise InputError(f"{origin} presents audit key {fingerprint(log_key_pem)}, not the pinned "
                             f"{fingerprint(known['log_key'])}: refused (a key change needs its witness reset)")
        if not checkpoint.valid(Verifier(log_key_pem)):
            raise InputError(f"the checkpoint of {origin} over {checkpoint.count} entries has a bad signature")
        if known is not None:
            seen = known["checkpoint"]
            _check_extends(origin, seen["count"], bytes.fromhex(seen["head"]), checkpoint, old_size, proof)
        moment = int(now().timestamp())
        bundle = {"format": FORMAT, "origin": origin, "log_key": log_key_pem, "checkpoint": checkpoint.as_json(),
                  "cosignature": {"witness": witness_id, "key": signer.public_pem(), "time": moment,
                                  "signature": signer.sign(cosignature_message(origin, checkpoint.count,
                                                                               checkpoint.head, moment)).hex()}}
        try:
            write_atomically(path, json.dumps(bundle, indent=1, sort_keys=True).encode())
        except OSError as exc:
            raise AuditError(write_failure(f"the witness file {path}", exc)) from None
    return bundle


def _check_extends(origin: str, size: int, head: bytes, checkpoint: Checkpoint, old_size: int,
                   proof: list[bytes]) -> None:
    if checkpoint.count < size:
        raise InputError(f"rollback: {origin} presents {checkpoint.count} entries; this witness cosigned {size}")
    if old_size != size:
        raise ConflictError(size)
    if len(proof) != checkpoint.count - size:
        raise InputError(f"the proof from {size} to {checkpoint.count} entries holds {len(proof)} digests")
    for digest in proof:
        head = chain_hash(head, digest)
    if head != checkpoint.head:
        raise InputError(f"fork: the log of {origin} at {checkpoint.count} entries does not extend the one this "
                         f"witness cosigned at {size} (rewritten)")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuditError(f"the witness file {path} is unreadable ({exc}); restore it") from None
    return doc


def read_bundle(path: Path, log_verifier: Verifier, witness_key_pem: str | None = None) -> Witnessed:
    """A witness bundle, its cosignature and the node's signature checked (the latter with the officer's key)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        cp, co = doc["checkpoint"], doc["cosignature"]
        checkpoint = Checkpoint(int(cp["count"]), bytes.fromhex(cp["head"]), str(cp["time"]), str(cp["signature"]))
        origin, witness, moment, key = str(doc["origin"]), str(co["witness"]), int(co["time"]), str(co["key"])
        cosigned = Verifier(key).check(cosignature_message(origin, checkpoint.count, checkpoint.head, moment),
                                       str(co["signature"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the witness bundle {path} ({type(exc).__name__})") from None
    if doc.get("format") != FORMAT:
        raise InputError(f"{path} is not a witness bundle")
    if witness_key_pem is not None and fingerprint(witness_key_pem) != fingerprint(key):
        raise InputError(f"the bundle {path} is cosigned with key {fingerprint(key)}, not the witness key given")
    if not cosigned:
        raise InputError(f"the cosignature of {witness} in {path} is bad")
    if not checkpoint.valid(log_verifier):
        raise InputError(f"the checkpoint in {path} is not signed with the key you gave for this log")
    when = dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")
    return Witnessed(witness, checkpoint.count, checkpoint.head, when)


def latest_checkpoint(log: Path, verifier: Verifier) -> Checkpoint:
    """The node's own latest checkpoint (its checkpoint file), to hand to a witness."""
    side = sidecar_path(log)
    try:
        signed = read_checkpoint_file(side, verifier)
        doc = json.loads(side.read_bytes())
    except (OSError, ValueError):
        signed = None
    if signed is None:
        raise AuditError(f"no valid checkpoint file {side}: nothing to hand to a witness")
    return Checkpoint(signed[0], signed[1], str(doc["time"]), str(doc["signature"]))


def consistency_proof(log: Path, old_size: int, size: int) -> list[bytes]:
    """d(old_size) .. d(size - 1) from the node's own log (its writers verified it)."""
    if size - old_size > MAX_PROOF:
        raise AuditError(f"{size - old_size} entries since the witness's last cosignature: more than one hand-over "
                         "may prove; see docs/audit.md")
    state = scan(log.read_bytes())
    bodies = {seq: body for seq, body in state.entries if old_size <= seq < size}
    if len(bodies) != size - old_size:
        raise AuditError(f"the log no longer holds entries {old_size} to {size - 1} (pruned past what the witness "
                         "saw): the witness's operator must reset its file for this node (docs/audit.md)")
    return [entry_digest(seq, bodies[seq]) for seq in range(old_size, size)]
