"""Conformance with the published vectors (see tests/vectors/README.md), and mutations of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from psi import group, oprf
from psi.errors import MalformedMessageError
from psi.h2c import expand_message_xmd_sha512

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


OPRF = _load("rfc9497_ristretto255_sha512_oprf.json")
XMD = _load("rfc9380_expand_message_xmd_sha512.json")
RISTRETTO = _load("rfc9496_ristretto255.json")
SK = bytes.fromhex(OPRF["skSm"])


def test_derive_key_pair() -> None:
    sk, pk = oprf.derive_key_pair(bytes.fromhex(OPRF["seed"]), bytes.fromhex(OPRF["key_info"]))
    assert sk == SK
    assert pk == group.scalar_mult_base(sk)


@pytest.mark.parametrize("vector", OPRF["vectors"], ids=lambda v: f"input={v['input'][:8]}")
def test_rfc9497_oprf_mode(vector: dict[str, str]) -> None:
    data = bytes.fromhex(vector["input"])
    blind, blinded = oprf.blind(data, bytes.fromhex(vector["blind"]))
    assert blinded.hex() == vector["blinded_element"]
    evaluated = oprf.blind_evaluate(SK, blinded)
    assert evaluated.hex() == vector["evaluation_element"]
    assert oprf.finalize(data, blind, evaluated).hex() == vector["output"]
    assert oprf.evaluate(SK, data).hex() == vector["output"]
    assert oprf.finalize_with_inverse(data, group.invert_scalar(blind), evaluated).hex() == vector["output"]


@pytest.mark.parametrize("vector", OPRF["vectors"], ids=lambda v: f"input={v['input'][:8]}")
def test_mutated_evaluations_never_give_the_output(vector: dict[str, str]) -> None:
    data, blind = bytes.fromhex(vector["input"]), bytes.fromhex(vector["blind"])
    good = bytes.fromhex(vector["evaluation_element"])
    mutants = [good[:31], good + b"\x00", bytes(32)]
    mutants += [good[:i] + bytes([good[i] ^ (1 << bit)]) + good[i + 1:] for i in range(32) for bit in (0, 7)]
    for mutant in mutants:
        try:
            output = oprf.finalize(data, blind, mutant)
        except MalformedMessageError:
            continue
        assert output.hex() != vector["output"]


@pytest.mark.parametrize("vector", XMD["vectors"], ids=lambda v: f"{v['msg'][:8]}-{v['len_in_bytes']}")
def test_rfc9380_expand_message_xmd_sha512(vector: dict[str, Any]) -> None:
    out = expand_message_xmd_sha512(vector["msg"].encode(), XMD["dst"].encode(), vector["len_in_bytes"])
    assert out.hex() == vector["uniform_bytes"]


def test_rfc9496_generator_multiples() -> None:
    multiples = RISTRETTO["generator_multiples"]
    assert multiples[0] == group.IDENTITY.hex()
    for i, encoding in enumerate(multiples[1:], start=1):
        assert group.scalar_mult_base(i.to_bytes(32, "little")).hex() == encoding
        group.check_element(bytes.fromhex(encoding))


@pytest.mark.parametrize("encoding", RISTRETTO["invalid_encodings"])
def test_rfc9496_invalid_encodings_are_refused(encoding: str) -> None:
    with pytest.raises(MalformedMessageError):
        group.check_element(bytes.fromhex(encoding))


@pytest.mark.parametrize("vector", RISTRETTO["one_way_map"], ids=lambda v: v["output"][:8])
def test_rfc9496_one_way_map(vector: dict[str, str]) -> None:
    assert group.element_from_uniform_bytes(bytes.fromhex(vector["input"])).hex() == vector["output"]
