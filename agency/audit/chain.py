"""The audit log's line format and its hashes and signatures.

A log is JSON Lines. Three kinds of line:

    {"kind": "entry", "seq": n, "prev": h(n-1), "body": {...}, "hash": h(n), "mac": m(n)}
    {"kind": "checkpoint", "count": n + 1, "head": h(n), "time": ..., "signature": ...}
    {"kind": "base", "next_seq": k, "prev": h(k-1), "time": ..., "signature": ...}   (first line after a prune)

    d(n) = blake3("psi-audit-entry-v1" || canonical JSON of {"seq": n, "body": body})
    h(n) = blake3("psi-audit-chain-v1" || h(n-1) || d(n)),  h(-1) = 32 zero bytes

Every line is the canonical JSON of its fields (sorted keys, no spaces), nothing else.
Checkpoints and bases are signed with the node's Ed25519 key (RFC 8032,
pycryptodome) over a domain tag, the count, the head hash and the time.

    m(n) = keyed blake3(K, h(n)),  K = blake3 derive_key("psi-audit-writer-mac-v1", Ed25519 seed)

The mac lets the node's own writers, who hold the key, tell the entries they
wrote from forged ones before they sign them; an officer cannot check it and
does not need to (docs/audit.md). Exports carry
the digests d(n) of foreign entries, so a case's entries can be checked
against a signed checkpoint without disclosing other cases.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import blake3
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

GENESIS = bytes(32)
_ENTRY_TAG = b"psi-audit-entry-v1"
_CHAIN_TAG = b"psi-audit-chain-v1"
_CHECKPOINT_TAG = b"psi-audit-checkpoint-v1"
_BASE_TAG = b"psi-audit-base-v1"
_MAC_CONTEXT = "psi-audit-writer-mac-v1"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(public_pem: str) -> str:
    """Names an audit key: SHA256 of the raw Ed25519 public key, as `psi audit key` prints it."""
    raw = ECC.import_key(public_pem).export_key(format="raw")
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def entry_digest(seq: int, body: dict[str, Any]) -> bytes:
    return blake3.blake3(_ENTRY_TAG + canonical({"seq": seq, "body": body})).digest()


def chain_hash(prev: bytes, digest: bytes) -> bytes:
    return blake3.blake3(_CHAIN_TAG + prev + digest).digest()


def checkpoint_message(count: int, head: bytes, time: str) -> bytes:
    return _CHECKPOINT_TAG + count.to_bytes(8, "big") + head + time.encode()


def base_message(next_seq: int, prev: bytes, time: str) -> bytes:
    return _BASE_TAG + next_seq.to_bytes(8, "big") + prev + time.encode()


class Signer:
    """The node's audit signing key (Ed25519)."""

    def __init__(self, key: ECC.EccKey) -> None:
        if key.curve != "Ed25519" or not key.has_private():
            raise ValueError("an Ed25519 private key is required")
        self._key = key
        self._mac_key = blake3.blake3(key.seed, derive_key_context=_MAC_CONTEXT).digest()

    def __repr__(self) -> str:
        return "Signer(<Ed25519 private key>)"

    def sign(self, message: bytes) -> bytes:
        return bytes(eddsa.new(self._key, "rfc8032").sign(message))

    def public_pem(self) -> str:
        return str(self._key.public_key().export_key(format="PEM"))

    def mac(self, chain_value: bytes) -> str:
        return blake3.blake3(chain_value, key=self._mac_key).hexdigest()

    def mac_ok(self, chain_value: bytes, mac: object) -> bool:
        return isinstance(mac, str) and hmac.compare_digest(self.mac(chain_value), mac)


class Verifier:
    def __init__(self, public_pem: str) -> None:
        key = ECC.import_key(public_pem)
        if key.curve != "Ed25519":
            raise ValueError("not an Ed25519 public key")
        self._verifier = eddsa.new(key, "rfc8032")

    def check(self, message: bytes, signature_hex: str) -> bool:
        try:
            self._verifier.verify(message, bytes.fromhex(signature_hex))
        except ValueError:
            return False
        return True


@dataclass(frozen=True)
class Entry:
    seq: int
    prev: bytes
    body: dict[str, Any]
    hash: bytes

    def line(self, signer: Signer) -> bytes:
        return canonical({"kind": "entry", "seq": self.seq, "prev": self.prev.hex(), "body": self.body,
                          "hash": self.hash.hex(), "mac": signer.mac(self.hash)}) + b"\n"


def make_entry(seq: int, prev: bytes, body: dict[str, Any]) -> Entry:
    return Entry(seq, prev, body, chain_hash(prev, entry_digest(seq, body)))


def checkpoint_line(count: int, head: bytes, time: str, signer: Signer) -> bytes:
    signature = signer.sign(checkpoint_message(count, head, time)).hex()
    return canonical({"kind": "checkpoint", "count": count, "head": head.hex(), "time": time,
                      "signature": signature}) + b"\n"


def base_line(next_seq: int, prev: bytes, time: str, signer: Signer) -> bytes:
    signature = signer.sign(base_message(next_seq, prev, time)).hex()
    return canonical({"kind": "base", "next_seq": next_seq, "prev": prev.hex(), "time": time,
                      "signature": signature}) + b"\n"
