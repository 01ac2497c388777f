"""The ristretto255 group (RFC 9496) through libsodium, as RFC 9497 uses it.

Elements and scalars are their canonical 32-byte encodings. Everything that
can fail on peer input raises `MalformedMessageError`; libsodium's own
messages never reach the peer.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import rbcl

from psi.errors import CryptoError, MalformedMessageError

ELEMENT_BYTES = 32
SCALAR_BYTES = 32
IDENTITY = bytes(ELEMENT_BYTES)
# Group order L = 2^252 + 27742317777372353535851937790883648493
ORDER = 2**252 + 27742317777372353535851937790883648493

_from_hash = rbcl.crypto_core_ristretto255_from_hash
_is_valid = rbcl.crypto_core_ristretto255_is_valid_point
_mult = rbcl.crypto_scalarmult_ristretto255
_scalar_mul = rbcl.crypto_core_ristretto255_scalar_mul
_scalar_invert = rbcl.crypto_core_ristretto255_scalar_invert
_scalar_reduce = rbcl.crypto_core_ristretto255_scalar_reduce


def element_from_uniform_bytes(uniform: bytes) -> bytes:
    """The one-way map of RFC 9496 Section 4.3.4 on 64 uniform bytes."""
    return bytes(_from_hash(uniform))


def scalar_from_wide_bytes(wide: bytes) -> bytes:
    """Reduce a 64-byte little-endian integer modulo L (RFC 9497 HashToScalar)."""
    return bytes(_scalar_reduce(wide))


def random_scalar() -> bytes:
    """A uniformly random non-zero scalar, drawn from the OS generator."""
    while True:
        scalar = _scalar_reduce(secrets.token_bytes(64))
        if scalar != bytes(SCALAR_BYTES):
            return bytes(scalar)


def is_zero_scalar(scalar: bytes) -> bool:
    return int.from_bytes(scalar, "little") % ORDER == 0


NOT_CANONICAL = "element is not a canonical ristretto255 encoding"
IS_IDENTITY = "element is the identity"


def _check_shape(encoded: bytes) -> None:
    """The checks of DeserializeElement that libsodium's decoding does not make."""
    if len(encoded) != ELEMENT_BYTES:
        raise MalformedMessageError(f"element must be {ELEMENT_BYTES} bytes, got {len(encoded)}")
    if encoded == IDENTITY:
        raise MalformedMessageError(IS_IDENTITY)
    # RFC 9496 4.3.1: s >= p is not canonical. libsodium ignores bit 255, so an encoding with it
    # set would decode like the one without: check it here.
    if encoded[31] & 0x80:
        raise MalformedMessageError(NOT_CANONICAL)


def check_element(encoded: bytes) -> None:
    """RFC 9497 DeserializeElement: canonical encoding of a non-identity element.

    Raises MalformedMessageError otherwise.
    """
    _check_shape(encoded)
    if not _is_valid(encoded):
        raise MalformedMessageError(NOT_CANONICAL)


def scalar_mult_peer(scalar: bytes, encoded: bytes) -> bytes:
    """DeserializeElement then scalar * element, decoding once: for elements a peer sent.

    libsodium's multiplication decodes with the full RFC 9496 check and fails on an invalid
    encoding, so a separate validity pass (a second square root) is not needed.
    Raises MalformedMessageError for an element that `check_element` would refuse.
    """
    _check_shape(encoded)
    try:
        return bytes(_mult(scalar, encoded))
    except RuntimeError:
        raise MalformedMessageError(NOT_CANONICAL) from None


def scalar_mult(scalar: bytes, element: bytes) -> bytes:
    """scalar * element for a valid element and a non-zero reduced scalar."""
    try:
        return bytes(_mult(scalar, element))
    except RuntimeError as exc:  # identity result or invalid point
        raise CryptoError("scalar multiplication failed") from exc


def scalar_mult_base(scalar: bytes) -> bytes:
    return bytes(rbcl.crypto_scalarmult_ristretto255_base(scalar))


def invert_scalar(scalar: bytes) -> bytes:
    return bytes(_scalar_invert(scalar))


def batch_invert_scalars(scalars: Sequence[bytes]) -> list[bytes]:
    """Invert many non-zero scalars with one inversion (Montgomery's trick)."""
    if not scalars:
        return []
    prefix = [scalars[0]]
    for scalar in scalars[1:]:
        prefix.append(_scalar_mul(prefix[-1], scalar))
    running = _scalar_invert(prefix[-1])
    inverses = [b""] * len(scalars)
    for i in range(len(scalars) - 1, 0, -1):
        inverses[i] = _scalar_mul(running, prefix[i - 1])
        running = _scalar_mul(running, scalars[i])
    inverses[0] = running
    return inverses
