"""Binding a follow-up request to a hit the requester really obtained.

After a hit, the requester holds the OPRF output F(k, x) of the matching key.
From its label key it derives a follow-up key (HKDF-Expand, RFC 5869) and
sends HMAC-SHA256(follow-up key, partner || reference || request id). The
server recomputes F(k, x) for the keys of the record with that reference and
checks the MAC in constant time. A made-up reference has no such record; a
reference copied from another agency fails, because the MAC binds the
requester's own certificate identity and only a holder of x can compute it.
x itself is never sent.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

FOLLOWUP_INFO = b"psi-v1-followup-key"
FOLLOWUP_KEY_BYTES = 32
_DOMAIN = b"psi-v1-followup-proof"


def followup_key(label_key: bytes) -> bytes:
    return HKDFExpand(hashes.SHA256(), FOLLOWUP_KEY_BYTES, FOLLOWUP_INFO).derive(label_key)


def _message(partner: str, reference: str, request_id: str) -> bytes:
    parts = [_DOMAIN, partner.encode(), reference.encode(), request_id.encode()]
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


def followup_proof(key: bytes, partner: str, reference: str, request_id: str) -> bytes:
    return hmac.new(key, _message(partner, reference, request_id), hashlib.sha256).digest()


def proof_matches(key: bytes, partner: str, reference: str, request_id: str, proof: bytes) -> bool:
    return hmac.compare_digest(followup_proof(key, partner, reference, request_id), proof)
