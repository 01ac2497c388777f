"""RFC 9497 OPRF, mode 0x00 (OPRF), suite ristretto255-SHA512.

Section references are to RFC 9497. Each function is one step of the
protocol and does no I/O; randomness comes from `secrets` unless a test
passes an explicit blind (the vector-replay path).
"""

from __future__ import annotations

import hashlib

from psi import group
from psi.errors import CryptoError, InputError
from psi.h2c import expand_message_xmd_sha512

SUITE_ID = "ristretto255-SHA512"
MODE_OPRF = 0x00
CONTEXT_STRING = b"OPRFV1-" + bytes([MODE_OPRF]) + b"-" + SUITE_ID.encode()
OUTPUT_BYTES = 64  # Nh for SHA-512
MAX_INPUT_BYTES = 65535  # inputs are length-prefixed with two bytes
INPUT_TOO_LONG = f"OPRF input longer than {MAX_INPUT_BYTES} bytes"
INPUT_IS_IDENTITY = "input hashes to the identity element"

_DST_HASH_TO_GROUP = b"HashToGroup-" + CONTEXT_STRING
_DST_HASH_TO_SCALAR = b"HashToScalar-" + CONTEXT_STRING
_DST_DERIVE_KEY_PAIR = b"DeriveKeyPair" + CONTEXT_STRING


def _check_input(data: bytes) -> None:
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(INPUT_TOO_LONG)


def hash_to_group(data: bytes) -> bytes:
    """HashToGroup (Section 4.1): hash_to_ristretto255 with expand_message_xmd."""
    return group.element_from_uniform_bytes(
        expand_message_xmd_sha512(data, _DST_HASH_TO_GROUP, 64)
    )


def hash_to_scalar(data: bytes, dst: bytes = _DST_HASH_TO_SCALAR) -> bytes:
    """HashToScalar (Section 4.1)."""
    return group.scalar_from_wide_bytes(expand_message_xmd_sha512(data, dst, 64))


def derive_key_pair(seed: bytes, info: bytes) -> tuple[bytes, bytes]:
    """DeriveKeyPair (Section 3.2.1); returns (skS, pkS)."""
    if len(seed) != 32:
        raise InputError("DeriveKeyPair seed must be 32 bytes")
    derive_input = seed + len(info).to_bytes(2, "big") + info
    for counter in range(256):
        sk = hash_to_scalar(derive_input + bytes([counter]), _DST_DERIVE_KEY_PAIR)
        if not group.is_zero_scalar(sk):
            return sk, group.scalar_mult_base(sk)
    raise CryptoError("DeriveKeyPair failed")


def generate_key() -> bytes:
    """A fresh random server key skS (Section 3.2)."""
    return group.random_scalar()


def input_element(data: bytes) -> bytes:
    """HashToGroup(input) with the input checks of Blind and Evaluate; independent of any key."""
    _check_input(data)
    element = hash_to_group(data)
    if element == group.IDENTITY:
        raise InputError(INPUT_IS_IDENTITY)
    return element


def blind(data: bytes, blind_scalar: bytes | None = None) -> tuple[bytes, bytes]:
    """Blind (Section 3.3.1); returns (blind, blindedElement)."""
    r = group.random_scalar() if blind_scalar is None else blind_scalar
    return r, group.scalar_mult(r, input_element(data))


def blind_evaluate(sk: bytes, blinded_element: bytes) -> bytes:
    """BlindEvaluate (Section 3.3.1), deserializing the client's element (MalformedMessageError if invalid)."""
    return group.scalar_mult_peer(sk, blinded_element)


def finalize_hash(data: bytes, unblinded_element: bytes) -> bytes:
    """The hash that ends Finalize and Evaluate (Section 3.3.1)."""
    _check_input(data)
    return hashlib.sha512(
        len(data).to_bytes(2, "big")
        + data
        + len(unblinded_element).to_bytes(2, "big")
        + unblinded_element
        + b"Finalize"
    ).digest()


def finalize(data: bytes, blind_scalar: bytes, evaluated_element: bytes) -> bytes:
    """Finalize (Section 3.3.1): unblind with 1/blind, then hash with the input."""
    return finalize_with_inverse(data, group.invert_scalar(blind_scalar), evaluated_element)


def finalize_with_inverse(data: bytes, blind_inverse: bytes, evaluated_element: bytes) -> bytes:
    """Finalize given 1/blind already computed (see `group.batch_invert_scalars`)."""
    return finalize_hash(data, group.scalar_mult_peer(blind_inverse, evaluated_element))


def evaluate(sk: bytes, data: bytes) -> bytes:
    """Evaluate (Section 3.3.1): the server's direct PRF evaluation of its own input."""
    return finalize_hash(data, group.scalar_mult(sk, input_element(data)))

