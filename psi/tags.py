"""What the server publishes per match key: a short tag and a sealed label.

From the 64-byte OPRF output F(k, key): bytes 0..31 give the tag (truncated
to `tag_length`), bytes 32..63 the AES-SIV key (RFC 5297) that seals the
record's follow-up label. Only a holder of the same key can compute either.

Cardinality mode uses the DH-PSI-CA tag instead: a hash of k*H(key) alone,
so a client with shuffled evaluations can count hits but cannot tell which.
"""

from __future__ import annotations

import hashlib
import math

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from psi import group, oprf
from psi.errors import MalformedMessageError
from psi.profiles import Profile
from psi.records import Record

TAG_MATERIAL_BYTES = 32
FALSE_POSITIVE_BITS = 40  # target: below 2^-40 false tag matches per query
MIN_TAG_BYTES = 8
_LABEL_AD = b"psi-v1-label"
_CARDINALITY_DOMAIN = b"psi-v1-cardinality-tag"
_LABEL_SEP = b"\x1f"


def tag_length(server_keys: int, max_query_keys: int) -> int:
    """Bytes per tag so that P(any false match in one query) < 2^-FALSE_POSITIVE_BITS."""
    bits = FALSE_POSITIVE_BITS + math.log2(max(server_keys, 1)) + math.log2(max(max_query_keys, 1))
    return min(TAG_MATERIAL_BYTES, max(MIN_TAG_BYTES, math.ceil(bits / 8)))


def split_output(prf_output: bytes) -> tuple[bytes, bytes]:
    """(tag material, label key) from one OPRF output."""
    return prf_output[:TAG_MATERIAL_BYTES], prf_output[TAG_MATERIAL_BYTES:]


def cardinality_material(evaluated_element: bytes) -> bytes:
    """Tag material of k*H(key) for cardinality mode."""
    return hashlib.sha512(_CARDINALITY_DOMAIN + evaluated_element).digest()[:TAG_MATERIAL_BYTES]


def encode_label(reference: str, category: str) -> bytes:
    return reference.encode() + _LABEL_SEP + category.encode()


def decode_label(plain: bytes) -> tuple[str, str]:
    reference, _, category = plain.partition(_LABEL_SEP)
    return reference.decode(), category.decode()


def seal_label(label_key: bytes, plain: bytes) -> bytes:
    """Deterministic AEAD: one key per (epoch, match key), 16 bytes of overhead."""
    return AESSIV(label_key).encrypt(plain, [_LABEL_AD])


def open_label(label_key: bytes, sealed: bytes) -> bytes | None:
    """The label, or None when the key does not fit (a false tag match)."""
    try:
        return AESSIV(label_key).decrypt(sealed, [_LABEL_AD])
    except (InvalidTag, ValueError):
        return None


# What a server keeps per match key, in two parts. The key-independent part is computed once per
# record version (HashToGroup is most of its cost); a new key epoch needs only the second part.
KeyInput = tuple[str, str, bytes, bytes, bytes]
"""(record id, rule id, match key, HashToGroup(match key), the record's label)"""
EpochEntry = tuple[str, str, bytes, bytes, bytes]
"""(record id, rule id, tag material, cardinality material, sealed label) for one key epoch"""


def seal(key: bytes, value: bytes, element: bytes, label: bytes) -> tuple[bytes, bytes, bytes]:
    """(tag material, cardinality material, sealed label) of one match key (RFC 9497 Evaluate).

    `element` is HashToGroup(value), precomputed and trusted (the server's own).
    """
    evaluated = group.scalar_mult(key, element)
    material, label_key = split_output(oprf.finalize_hash(value, evaluated))
    return material, cardinality_material(evaluated), seal_label(label_key, label)


def key_inputs(records: list[Record], profile: Profile) -> list[KeyInput]:
    """The key-independent part of many records' match keys."""
    out: list[KeyInput] = []
    for r in records:
        label = encode_label(r.reference, r.category)
        out.extend((r.record_id, k.rule_id, k.value, oprf.input_element(k.value), label)
                   for k in profile.match_keys(r))
    return out


def epoch_entries(inputs: list[KeyInput], key: bytes) -> list[EpochEntry]:
    """One key epoch's entries from stored inputs (one worker's share of a list)."""
    return [(record_id, rule_id, *seal(key, value, element, label))
            for record_id, rule_id, value, element, label in inputs]


def prepare_records(records: list[Record], key: bytes, profile: Profile) -> list[tuple[KeyInput, EpochEntry]]:
    """Both parts for newly imported records, in one pass (one worker's share)."""
    inputs = key_inputs(records, profile)
    return list(zip(inputs, epoch_entries(inputs, key), strict=True))


def check_tags_blob(blob: bytes, length: int) -> int:
    """Number of tags in a packed blob; raises if it is not whole tags."""
    if length <= 0 or len(blob) % length:
        raise MalformedMessageError(f"tag data of {len(blob)} bytes is not a multiple of {length}")
    return len(blob) // length
