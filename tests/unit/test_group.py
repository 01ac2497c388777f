from __future__ import annotations

import pytest
import rbcl

from psi import group
from psi.errors import MalformedMessageError


def test_batch_inversion_matches_single_inversion() -> None:
    scalars = [group.random_scalar() for _ in range(17)]
    assert group.batch_invert_scalars(scalars) == [group.invert_scalar(s) for s in scalars]
    assert group.batch_invert_scalars([]) == []


def test_check_element_accepts_valid_points() -> None:
    group.check_element(rbcl.crypto_core_ristretto255_random())


@pytest.mark.parametrize(
    ("encoded", "reason"),
    [
        (bytes(32), "identity"),
        (b"\xff" * 32, "canonical"),
        (bytes(31), "32 bytes"),
        (bytes(33), "32 bytes"),
        (b"", "32 bytes"),
    ],
)
def test_check_element_rejects(encoded: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessageError, match=reason):
        group.check_element(encoded)


def test_random_scalar_is_reduced_and_nonzero() -> None:
    for _ in range(50):
        s = group.random_scalar()
        assert 0 < int.from_bytes(s, "little") < group.ORDER


def test_bit_255_set_is_not_canonical() -> None:
    valid = rbcl.crypto_core_ristretto255_random()
    with pytest.raises(MalformedMessageError, match="canonical"):
        group.check_element(valid[:31] + bytes([valid[31] | 0x80]))
