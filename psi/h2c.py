"""expand_message_xmd with SHA-512 (RFC 9380, Section 5.3.1)."""

from __future__ import annotations

import hashlib

_B_IN_BYTES = 64  # SHA-512 output size
_S_IN_BYTES = 128  # SHA-512 block size
_Z_PAD_HASH = hashlib.sha512(bytes(_S_IN_BYTES))


def expand_message_xmd_sha512(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """Return `len_in_bytes` uniform bytes for `msg` under domain separation tag `dst`.

    Raises ValueError for lengths the RFC forbids (caller bug, never peer input).
    """
    ell = -(-len_in_bytes // _B_IN_BYTES)
    if ell > 255 or len_in_bytes > 65535 or len(dst) > 255:
        raise ValueError("expand_message_xmd: length or DST out of range")
    dst_prime = dst + bytes([len(dst)])
    h = _Z_PAD_HASH.copy()  # Z_pad prefix hashed once
    h.update(msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime)
    b_0 = h.digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    blocks = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + bytes([i]) + dst_prime).digest()
        blocks.append(b_i)
    return b"".join(blocks)[:len_in_bytes]
