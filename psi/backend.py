"""The group operations' batch calls, behind one interface: the native core or the Python reference.

Every hot loop of both sides (blinding, evaluation, finalizing, the server's epoch
entries and the cardinality variants) calls `active()`, which is either the
Python reference (`psi.oprf` over libsodium, one element at a time) or the optional
native package `psi_native` (`native/`: curve25519-dalek, parallel inside, the GIL
released). Both take and return packed fixed-width elements and raise the same
errors, naming the same element; `tests/unit/test_backends.py` checks they agree.

`PSI_BACKEND=python` or `PSI_BACKEND=native` forces one (tests, benchmarks);
unset, the native core is used when it is installed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from array import array
from collections.abc import Sequence
from types import ModuleType
from typing import Protocol, cast

import rbcl
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from psi import group, oprf
from psi.errors import CryptoError, ElementError, InputError, MalformedMessageError

_E = group.ELEMENT_BYTES
_S = group.SCALAR_BYTES
MATERIAL_BYTES = 32  # tag material: an OPRF output's first half, or SHA-512(domain || k*H(key)) truncated
SEAL_OVERHEAD = 16  # AES-SIV's synthetic IV, before the ciphertext


class Backend(Protocol):
    """The batch calls; `values` are OPRF inputs, every other buffer packed fixed-width items."""

    @property
    def name(self) -> str: ...

    @property
    def releases_gil(self) -> bool:
        """Whether threads run its calls side by side (else a process pool is needed for both cores)."""

    def hash_to_group(self, values: Sequence[bytes]) -> bytes:
        """HashToGroup with the input checks of Blind (InputError): packed elements."""

    def blind(self, values: Sequence[bytes], blinds: bytes | None = None) -> tuple[bytes, bytes]:
        """(packed blinds, packed blinded elements); fresh random blinds unless given."""

    def blind_evaluate(self, key: bytes, packed: bytes) -> bytes:
        """BlindEvaluate of a peer's elements, each validated (ElementError)."""

    def finalize(self, values: Sequence[bytes], blinds: bytes, evaluated: bytes) -> bytes:
        """Finalize of each value with its blind and the peer's evaluation (ElementError): packed 64-byte outputs."""

    def epoch_entries(self, key: bytes, values: Sequence[bytes], elements: bytes, labels: Sequence[bytes],
                      domain: bytes, label_ad: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """Evaluate on the server's own values and their stored elements (CryptoError if one is invalid), made
        into what a key epoch publishes of each: (packed tag materials, the outputs' first halves; packed
        cardinality materials of k*element under `domain`; the labels sealed under the outputs' second halves
        with `label_ad`, back to back, each SEAL_OVERHEAD bytes longer than its label; packed label keys, the
        outputs' second halves, which bulk mode hands to a client that holds the match key)."""

    def cardinality_materials(self, scalar: bytes, packed: bytes, domain: bytes) -> bytes:
        """Cardinality material of scalar * each of a peer's elements (ElementError)."""

    def random_elements(self, count: int) -> bytes:
        """Uniformly random elements, packed."""


def _items(packed: bytes, width: int) -> list[bytes]:
    return [packed[i:i + width] for i in range(0, len(packed), width)]


def cardinality_material(domain: bytes, evaluated: bytes) -> bytes:
    """The DH-PSI-CA tag material of an evaluated element (`psi.tags` names the domain)."""
    return hashlib.sha512(domain + evaluated).digest()[:MATERIAL_BYTES]


def seal(label_key: bytes, plain: bytes, ad: bytes) -> bytes:
    """AES-SIV (RFC 5297; a 32-byte key, so AES-128-SIV) of `plain`, no nonce: the IV, then the ciphertext."""
    return AESSIV(label_key).encrypt(plain, [ad])


class PythonBackend:
    """The reference: `psi.oprf` and `psi.group` element by element, libsodium underneath."""

    name = "python (libsodium)"
    releases_gil = False

    def hash_to_group(self, values: Sequence[bytes]) -> bytes:
        return b"".join(oprf.input_element(v) for v in values)

    def blind(self, values: Sequence[bytes], blinds: bytes | None = None) -> tuple[bytes, bytes]:
        scalars = [group.random_scalar() for _ in values] if blinds is None else _items(blinds, _S)
        if len(scalars) != len(values):
            raise ValueError("one blind per input")
        return b"".join(scalars), b"".join(oprf.blind(v, r)[1] for v, r in zip(values, scalars, strict=True))

    def blind_evaluate(self, key: bytes, packed: bytes) -> bytes:
        out = []
        for i, element in enumerate(_items(packed, _E)):
            try:
                out.append(oprf.blind_evaluate(key, element))
            except MalformedMessageError as exc:
                raise ElementError(i, str(exc)) from None
        return b"".join(out)

    def finalize(self, values: Sequence[bytes], blinds: bytes, evaluated: bytes) -> bytes:
        out = []
        inverses = group.batch_invert_scalars(_items(blinds, _S))
        for i, (value, inverse, element) in enumerate(zip(values, inverses, _items(evaluated, _E), strict=True)):
            try:
                out.append(oprf.finalize_with_inverse(value, inverse, element))
            except MalformedMessageError as exc:
                raise ElementError(i, str(exc)) from None
        return b"".join(out)

    def epoch_entries(self, key: bytes, values: Sequence[bytes], elements: bytes, labels: Sequence[bytes],
                      domain: bytes, label_ad: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        tag_materials, materials, sealed, label_keys = [], [], [], []
        for value, element, label in zip(values, _items(elements, _E), labels, strict=True):
            try:  # checked like a peer's element, so that a damaged store fails here as it does natively
                evaluated = group.scalar_mult_peer(key, element)
            except MalformedMessageError:
                raise CryptoError("scalar multiplication failed") from None
            output = oprf.finalize_hash(value, evaluated)
            tag_materials.append(output[:MATERIAL_BYTES])
            materials.append(cardinality_material(domain, evaluated))
            sealed.append(seal(output[MATERIAL_BYTES:], label, label_ad))
            label_keys.append(output[MATERIAL_BYTES:])
        return b"".join(tag_materials), b"".join(materials), b"".join(sealed), b"".join(label_keys)

    def cardinality_materials(self, scalar: bytes, packed: bytes, domain: bytes) -> bytes:
        out = []
        for i, element in enumerate(_items(packed, _E)):
            try:
                out.append(cardinality_material(domain, group.scalar_mult_peer(scalar, element)))
            except MalformedMessageError as exc:
                raise ElementError(i, str(exc)) from None
        return b"".join(out)

    def random_elements(self, count: int) -> bytes:
        return b"".join(bytes(rbcl.crypto_core_ristretto255_random()) for _ in range(count))


class _NativeModule(Protocol):
    """What `native/src/lib.rs` exports; its errors carry (index, reason code)."""

    __version__: str
    ElementRefused: type[ValueError]
    InputRefused: type[ValueError]

    def simd(self) -> str: ...
    def hash_to_group(self, data: bytes, lengths: bytes, /) -> bytes: ...
    def random_scalars(self, n: int, /) -> bytes: ...
    def random_elements(self, n: int, /) -> bytes: ...
    def blind(self, data: bytes, lengths: bytes, blinds: bytes, /) -> bytes: ...
    def blind_evaluate(self, key: bytes, packed: bytes, /) -> bytes: ...
    def finalize(self, data: bytes, lengths: bytes, blinds: bytes, evaluated: bytes, /) -> bytes: ...
    def epoch_entries(self, key: bytes, data: bytes, lengths: bytes, elements: bytes, labels: bytes,
                      label_lengths: bytes, domain: bytes, label_ad: bytes, /) -> tuple[bytes, bytes, bytes, bytes]: ...
    def cardinality_materials(self, scalar: bytes, packed: bytes, domain: bytes, /) -> bytes: ...


_ELEMENT_REASONS = {"identity": group.IS_IDENTITY, "not_canonical": group.NOT_CANONICAL}
_INPUT_REASONS = {"too_long": oprf.INPUT_TOO_LONG, "identity": oprf.INPUT_IS_IDENTITY}


def _packed(values: Sequence[bytes]) -> tuple[bytes, bytes]:
    """Variable-length values as the native calls take them: one buffer and native-endian u32 lengths."""
    return b"".join(values), array("I", map(len, values)).tobytes()


class NativeBackend:
    """`psi_native`: the same calls, each one parallel inside with the GIL released."""

    releases_gil = True

    def __init__(self, module: _NativeModule) -> None:
        self._native = module
        self.name = f"native (psi_native {module.__version__}, curve25519-dalek {module.simd()})"

    def _element_error(self, exc: ValueError) -> ElementError:
        index, reason = exc.args
        return ElementError(index, _ELEMENT_REASONS[reason])

    def hash_to_group(self, values: Sequence[bytes]) -> bytes:
        try:
            return self._native.hash_to_group(*_packed(values))
        except self._native.InputRefused as exc:
            raise InputError(_INPUT_REASONS[exc.args[1]]) from None

    def blind(self, values: Sequence[bytes], blinds: bytes | None = None) -> tuple[bytes, bytes]:
        if blinds is None:
            blinds = self._native.random_scalars(len(values))
        try:
            return blinds, self._native.blind(*_packed(values), blinds)
        except self._native.InputRefused as exc:
            raise InputError(_INPUT_REASONS[exc.args[1]]) from None

    def blind_evaluate(self, key: bytes, packed: bytes) -> bytes:
        try:
            return self._native.blind_evaluate(key, packed)
        except self._native.ElementRefused as exc:
            raise self._element_error(exc) from None

    def finalize(self, values: Sequence[bytes], blinds: bytes, evaluated: bytes) -> bytes:
        try:
            return self._native.finalize(*_packed(values), blinds, evaluated)
        except self._native.ElementRefused as exc:
            raise self._element_error(exc) from None
        except self._native.InputRefused as exc:
            raise InputError(_INPUT_REASONS[exc.args[1]]) from None

    def epoch_entries(self, key: bytes, values: Sequence[bytes], elements: bytes, labels: Sequence[bytes],
                      domain: bytes, label_ad: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        try:
            return self._native.epoch_entries(key, *_packed(values), elements, *_packed(labels), domain, label_ad)
        except self._native.ElementRefused:
            raise CryptoError("scalar multiplication failed") from None  # as the reference: a stored element
        except self._native.InputRefused as exc:
            raise InputError(_INPUT_REASONS[exc.args[1]]) from None

    def cardinality_materials(self, scalar: bytes, packed: bytes, domain: bytes) -> bytes:
        try:
            return self._native.cardinality_materials(scalar, packed, domain)
        except self._native.ElementRefused as exc:
            raise self._element_error(exc) from None

    def random_elements(self, count: int) -> bytes:
        return self._native.random_elements(count)


PYTHON = PythonBackend()


def native_module() -> ModuleType | None:
    """The `psi_native` extension module, or None when it is not installed."""
    try:
        return importlib.import_module("psi_native")
    except ImportError:
        return None


def load_native() -> NativeBackend | None:
    """The native backend, or None when `psi_native` is not installed."""
    module = native_module()
    return None if module is None else NativeBackend(cast(_NativeModule, module))


@functools.cache
def active() -> Backend:
    """The backend of this process: `PSI_BACKEND` if set, else native when installed."""
    choice = os.environ.get("PSI_BACKEND", "")
    if choice not in {"", "python", "native"}:
        raise ValueError(f"PSI_BACKEND must be 'python' or 'native', not {choice!r}")
    native = None if choice == "python" else load_native()
    if choice == "native" and native is None:
        raise ImportError("PSI_BACKEND=native, but the psi_native package is not installed (make native)")
    return native or PYTHON
