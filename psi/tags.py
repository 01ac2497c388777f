"""What the server publishes per match key: a short tag and a sealed label.

From the 64-byte OPRF output F(k, key): bytes 0..31 give the tag (truncated
to `tag_length`), bytes 32..63 the AES-SIV key (RFC 5297) that seals the
record's follow-up label. Only a holder of the same key can compute either.

Cardinality mode uses the DH-PSI-CA tag instead: a hash of k*H(key) alone,
so a client with shuffled evaluations can count hits but cannot tell which.
"""

from __future__ import annotations

import math

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from psi import backend, group
from psi.errors import MalformedMessageError
from psi.profiles import Profile
from psi.records import Record

TAG_MATERIAL_BYTES = backend.MATERIAL_BYTES
FALSE_POSITIVE_BITS = 40  # target: below 2^-40 false tag matches per query
MIN_TAG_BYTES = 8
LABEL_AD = b"psi-v1-label"
CARDINALITY_DOMAIN = b"psi-v1-cardinality-tag"
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
    return backend.cardinality_material(CARDINALITY_DOMAIN, evaluated_element)


def encode_label(reference: str, category: str) -> bytes:
    return reference.encode() + _LABEL_SEP + category.encode()


def decode_label(plain: bytes) -> tuple[str, str]:
    reference, _, category = plain.partition(_LABEL_SEP)
    return reference.decode(), category.decode()


def seal_label(label_key: bytes, plain: bytes) -> bytes:
    """Deterministic AEAD: one key per (epoch, match key), 16 bytes of overhead."""
    return backend.seal(label_key, plain, LABEL_AD)


def open_label(label_key: bytes, sealed: bytes) -> bytes | None:
    """The label, or None when the key does not fit (a false tag match)."""
    try:
        return AESSIV(label_key).decrypt(sealed, [LABEL_AD])
    except (InvalidTag, ValueError):
        return None


# What a server keeps per match key, in two parts. The key-independent part is computed once per
# record version (HashToGroup is most of its cost); a new key epoch needs only the second part.
KeyInput = tuple[str, str, bytes, bytes, bytes]
"""(record id, rule id, match key, HashToGroup(match key), the record's label)"""
EpochEntry = tuple[str, str, bytes, bytes, bytes, bytes]
"""(record id, rule id, tag material, cardinality material, sealed label, label key) for one key epoch"""


def key_inputs(records: list[Record], profile: Profile) -> list[KeyInput]:
    """The key-independent part of many records' match keys."""
    keys = [(r.record_id, k.rule_id, k.value, encode_label(r.reference, r.category))
            for r in records for k in profile.match_keys(r)]
    elements = backend.active().hash_to_group([value for _, _, value, _ in keys])
    return [(record_id, rule_id, value, elements[i * group.ELEMENT_BYTES:(i + 1) * group.ELEMENT_BYTES], label)
            for i, (record_id, rule_id, value, label) in enumerate(keys)]


def epoch_entries(inputs: list[KeyInput], key: bytes) -> list[EpochEntry]:
    """One key epoch's entries from stored inputs (one worker's share of a list): RFC 9497 Evaluate of each
    match key, its output split as `split_output` does into tag material and the key that seals the label
    as `seal_label` does.

    The elements are HashToGroup(value), precomputed and trusted (the server's own). One backend call
    makes the entries whole, so that only slicing is left here per key (the native core does the rest
    with the GIL released).
    """
    materials, cardinality, sealed, label_keys = backend.active().epoch_entries(
        key, [value for _, _, value, _, _ in inputs], b"".join(element for _, _, _, element, _ in inputs),
        [label for _, _, _, _, label in inputs], CARDINALITY_DOMAIN, LABEL_AD)
    out: list[EpochEntry] = []
    m, end = TAG_MATERIAL_BYTES, 0
    for i, (record_id, rule_id, _, _, label) in enumerate(inputs):
        start, end = end, end + len(label) + backend.SEAL_OVERHEAD
        out.append((record_id, rule_id, materials[i * m:(i + 1) * m], cardinality[i * m:(i + 1) * m],
                    sealed[start:end], label_keys[i * m:(i + 1) * m]))
    return out


def prepare_records(records: list[Record], key: bytes, profile: Profile) -> list[tuple[KeyInput, EpochEntry]]:
    """Both parts for newly imported records, in one pass (one worker's share)."""
    inputs = key_inputs(records, profile)
    return list(zip(inputs, epoch_entries(inputs, key), strict=True))


def check_tags_blob(blob: bytes, length: int) -> int:
    """Number of tags in a packed blob; raises if it is not whole tags."""
    if length <= 0 or len(blob) % length:
        raise MalformedMessageError(f"tag data of {len(blob)} bytes is not a multiple of {length}")
    return len(blob) // length
