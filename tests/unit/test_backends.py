"""The native core against the Python reference: the same bytes and the same errors, element for element."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rbcl
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from hypothesis import given, settings
from hypothesis import strategies as st

from psi import backend, group, oprf, tags
from psi.backend import Backend
from psi.errors import ElementError, PsiError
from psi.workers import WorkerPool

NATIVE = backend.load_native()
needs_native = pytest.mark.skipif(NATIVE is None, reason="psi_native is not installed (make native)")
BACKENDS = [backend.PYTHON, *([NATIVE] if NATIVE else [])]
OPRF = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "rfc9497_ristretto255_sha512_oprf.json")
                  .read_text())
DOMAIN = tags.CARDINALITY_DOMAIN
AD = b"psi-v1-label"

scalars = st.binary(min_size=64, max_size=64).map(group.scalar_from_wide_bytes).filter(
    lambda s: not group.is_zero_scalar(s))
valid_elements = st.binary(min_size=64, max_size=64).map(group.element_from_uniform_bytes)
peer_elements = st.one_of(
    valid_elements, valid_elements,  # mostly valid, so that a batch often gets far
    st.just(group.IDENTITY),
    valid_elements.map(lambda e: e[:31] + bytes([e[31] | 0x80])),  # bit 255 set: not canonical
    st.just(bytes([0xED] + [0xFF] * 30 + [0x7F])),  # the field prime: not canonical
    st.binary(min_size=32, max_size=32),  # mostly not on the curve
)
values = st.lists(st.binary(max_size=80), max_size=40)


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """What a call gives: its result, or its error's class, message and element index."""
    try:
        return "ok", fn(*args)
    except (PsiError, ValueError) as exc:  # ValueError: a refused buffer shape
        return type(exc).__name__, (str(exc), getattr(exc, "index", None))


def both(call: Callable[[Backend], Any]) -> None:
    assert NATIVE is not None
    reference = outcome(call, backend.PYTHON)
    assert outcome(call, NATIVE) == reference


@needs_native
@settings(max_examples=60, deadline=None)
@given(values, st.data())
def test_hash_to_group_blind_and_finalize_agree(inputs: list[bytes], data: st.DataObject) -> None:
    if data.draw(st.booleans()) and inputs:  # an input too long for the two-byte length prefix
        inputs[data.draw(st.integers(0, len(inputs) - 1))] = bytes(oprf.MAX_INPUT_BYTES + 1)
    blinds = b"".join(data.draw(st.lists(scalars, min_size=len(inputs), max_size=len(inputs))))
    both(lambda b: b.hash_to_group(inputs))
    both(lambda b: b.blind(inputs, blinds))
    evaluated = b"".join(data.draw(st.lists(peer_elements, min_size=len(inputs), max_size=len(inputs))))
    both(lambda b: b.finalize(inputs, blinds, evaluated))


@needs_native
@settings(max_examples=60, deadline=None)
@given(scalars, st.lists(peer_elements, max_size=40))
def test_blind_evaluate_and_cardinality_materials_agree(key: bytes, elements: list[bytes]) -> None:
    packed = b"".join(elements)
    both(lambda b: b.blind_evaluate(key, packed))
    both(lambda b: b.cardinality_materials(key, packed, DOMAIN))


@needs_native
@settings(max_examples=40, deadline=None)
@given(scalars, values, st.data())
def test_the_servers_epoch_entries_agree(key: bytes, inputs: list[bytes], data: st.DataObject) -> None:
    elements = [oprf.input_element(v) for v in inputs]
    if data.draw(st.booleans()) and elements:  # a damaged stored element
        elements[data.draw(st.integers(0, len(elements) - 1))] = data.draw(peer_elements)
    if data.draw(st.booleans()) and inputs:  # an input too long for the two-byte length prefix
        inputs[data.draw(st.integers(0, len(inputs) - 1))] = bytes(oprf.MAX_INPUT_BYTES + 1)
    # labels of any length, empty and over one AES block included
    labels = data.draw(st.lists(st.binary(max_size=70), min_size=len(inputs), max_size=len(inputs)))
    ad = data.draw(st.sampled_from([AD, b""]))
    both(lambda b: b.epoch_entries(key, inputs, b"".join(elements), labels, DOMAIN, ad))


@needs_native
def test_epoch_entries_refuse_a_missing_label() -> None:
    assert NATIVE is not None
    inputs = [b"a", b"b"]
    with pytest.raises(ValueError, match="one element and one label per input"):
        NATIVE.epoch_entries(group.random_scalar(), inputs, NATIVE.hash_to_group(inputs), [b"x"], DOMAIN, AD)


@needs_native
def test_fresh_randomness_is_valid_and_fresh() -> None:
    assert NATIVE is not None
    blinds, blinded = NATIVE.blind([b"a", b"b"])
    assert len(blinds) == len(blinded) == 64 and blinds[:32] != blinds[32:]
    assert not group.is_zero_scalar(blinds[:32])
    padding = NATIVE.random_elements(50)
    for i in range(0, len(padding), 32):
        group.check_element(padding[i:i + 32])
    assert len({padding[i:i + 32] for i in range(0, len(padding), 32)}) == 50


@pytest.mark.parametrize("impl", BACKENDS, ids=lambda b: b.name.split()[0])
def test_rfc9497_vectors_through_each_backend(impl: Backend) -> None:
    key = bytes.fromhex(OPRF["skSm"])
    field = [[bytes.fromhex(v[name]) for v in OPRF["vectors"]]
             for name in ("input", "blind", "blinded_element", "evaluation_element", "output")]
    inputs, blinds, blinded, evaluated, outputs = field
    assert impl.blind(inputs, b"".join(blinds)) == (b"".join(blinds), b"".join(blinded))
    assert impl.blind_evaluate(key, b"".join(blinded)) == b"".join(evaluated)
    assert impl.finalize(inputs, b"".join(blinds), b"".join(evaluated)) == b"".join(outputs)
    elements = impl.hash_to_group(inputs)
    labels = [b"REF\x1farrest" * i for i in range(len(inputs))]  # the first one empty
    assert impl.epoch_entries(key, inputs, elements, labels, DOMAIN, AD) == (
        b"".join(o[:32] for o in outputs), impl.cardinality_materials(key, elements, DOMAIN),
        b"".join(AESSIV(o[32:]).encrypt(label, [AD]) for o, label in zip(outputs, labels, strict=True)),
        b"".join(o[32:] for o in outputs))


def test_the_label_seal_is_rfc5297() -> None:
    """RFC 5297 Appendix A.1 (AES-SIV-CMAC-256, one header, no nonce), through the reference's seal."""
    key = bytes.fromhex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    ad = bytes.fromhex("101112131415161718191a1b1c1d1e1f2021222324252627")
    assert backend.seal(key, bytes.fromhex("112233445566778899aabbccddee"), ad).hex() == (
        "85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c")


@pytest.mark.parametrize("impl", BACKENDS, ids=lambda b: b.name.split()[0])
def test_a_bad_element_is_named_by_its_index(impl: Backend) -> None:
    key = group.random_scalar()
    elements = [bytes(rbcl.crypto_core_ristretto255_random()) for _ in range(300)]
    elements[250], elements[120] = group.IDENTITY, elements[120][:31] + b"\xff"
    with pytest.raises(ElementError) as refused:
        impl.blind_evaluate(key, b"".join(elements))
    assert (refused.value.index, refused.value.reason) == (120, group.NOT_CANONICAL)


def test_the_backend_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        monkeypatch.setenv("PSI_BACKEND", "python")
        backend.active.cache_clear()
        assert backend.active() is backend.PYTHON
        assert WorkerPool(2).threads is False  # the reference needs processes for both cores
        monkeypatch.setenv("PSI_BACKEND", "fast")
        backend.active.cache_clear()
        with pytest.raises(ValueError, match="PSI_BACKEND"):
            backend.active()
        monkeypatch.setenv("PSI_BACKEND", "native")
        backend.active.cache_clear()
        if NATIVE is None:
            with pytest.raises(ImportError):
                backend.active()
        else:
            assert backend.active().releases_gil and WorkerPool(2).threads
    finally:
        monkeypatch.undo()
        backend.active.cache_clear()


@needs_native
def test_a_thread_pool_runs_the_native_batches() -> None:
    assert NATIVE is not None
    key = group.random_scalar()
    elements = NATIVE.random_elements(3000)
    with WorkerPool(2, threads=True) as pool:
        assert pool.start() == [] and not pool.inline_for(3000)
        parts = [pool.submit(NATIVE.blind_evaluate, key, elements[i:i + 32_000], size=3000)
                 for i in range(0, len(elements), 32_000)]
        assert b"".join(p.result() for p in parts) == backend.PYTHON.blind_evaluate(key, elements)
