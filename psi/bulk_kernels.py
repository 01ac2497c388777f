"""Bulk mode's heavy loops (docs/protocol.md, "Bulk mode"): the native kernels or the Python reference.

`psi.bulk` runs the KKRT16 state machine and calls these on packed buffers: the cuckoo table,
the base OTs, the OT-extension rows, the sender's entries and sealed payloads, the receiver's
index and look-up, and the client's label book (each hit's label opened and numbered, with its
follow-up key). Both implementations are deterministic functions of their inputs (the caller
draws every random byte), so they give byte-identical messages; the native one is the `bulk_*`
functions and `BulkLabels` of `psi_native` (native/bulk/, rayon, the GIL released), the reference is numpy plus
`cryptography`'s AES and libsodium's ristretto255, slow but small enough to read.
`kernels()` follows the OPRF backend switch (`PSI_BACKEND`, `psi.backend.active()`).

Packed u32 arrays are little-endian. A cuckoo table holds item * 3 + hash index per bin, or EMPTY.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Protocol, cast

import numpy as np
import rbcl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from psi import backend, followup, group, tags
from psi.errors import MalformedMessageError

WIDTH_BITS = 512  # code width k: one base OT per bit
ROW_BYTES = WIDTH_BITS // 8
X_BYTES = 16  # an item: SHA-256(LABEL_ITEM || key)[0:16]
KEY_BYTES = 16
WIDE_BYTES = 64  # a scalar is drawn as 64 bytes, reduced
POINT_BYTES = 32
HASHES = 3
EMPTY = 0xFFFFFFFF
F_BYTES = 32
MASKED_BYTES = KEY_BYTES + 4  # item key || ciphertext position, under F[12:32]
MIN_TAG_BYTES, MAX_TAG_BYTES = 8, F_BYTES - MASKED_BYTES
MATCH_BYTES = 4 + MASKED_BYTES
SEAL_OVERHEAD = 16
LABEL_KEY_BYTES = 32  # a hit's payload is label_key ‖ sealed_label (the server's stored entry)
MAX_EVICTIONS = 500
NOT_OPENED = 0xFFFFFFFF  # LabelBook.open: the label number of a payload whose label did not open

LABEL_ITEM = b"psi-bulk-v1-item"
LABEL_BASE_OT = b"psi-bulk-v1-base-ot"
LABEL_OPRF = b"psi-bulk-v1-oprf"
LABEL_SEAL = b"psi-bulk-v1-seal"
LABEL_PAYLOAD = b"psi-bulk-v1-payload"


def tag_bytes(receiver_items: int, sender_items: int) -> int:
    """Tag length: any false match among n_r bins and 3 n_s entries below 2^-40 (as the native crate)."""
    bits = 40 + math.log2(max(receiver_items, 1) * max(sender_items, 1) * HASHES)
    return min(max(math.ceil(bits / 8), MIN_TAG_BYTES), MAX_TAG_BYTES)


def record_bytes(tag_len: int) -> int:
    """A receiver index record: tag || mask || item (u32)."""
    return tag_len + MASKED_BYTES + 4


class LabelBook(Protocol):
    """A session's hit labels: each payload (label key ‖ sealed label) opened to its label (psi.tags) and its
    follow-up key (psi.followup), equal labels numbered once over every call, in the order they first appear."""

    def open(self, data: bytes, lengths: bytes) -> tuple[bytes, bytes]:
        """Payloads back to back (u32 lengths): per payload its label's number (u32) or NOT_OPENED, and its
        follow-up key (zeros where not opened), back to back."""
        ...

    def decoded(self) -> tuple[list[str], list[str]]:
        """The labels' references and categories, in the order of their numbers."""
        ...


class Kernels(Protocol):
    """The heavy calls; MalformedMessageError where a peer's value is refused."""

    @property
    def name(self) -> str: ...

    def digests(self, keys: Sequence[bytes]) -> bytes: ...
    def cuckoo(self, xs: bytes, seed: bytes, bins: int) -> bytes | None: ...
    def ot_point(self, a_wide: bytes) -> bytes: ...
    def ot_choose(self, a_point: bytes, b_wides: bytes, choices: bytes) -> tuple[bytes, bytes]: ...
    def ot_keys(self, a_wide: bytes, b_points: bytes) -> tuple[bytes, bytes]: ...
    def receiver_rows(self, k0: bytes, k1: bytes, code_key: bytes, xs: bytes, table: bytes,
                      r0: int) -> tuple[bytes, bytes]: ...
    def sender_rows(self, ks: bytes, s: bytes, u: bytes, r0: int) -> bytes: ...
    def groups(self, xs: bytes) -> tuple[bytes, bytes]: ...
    def positions(self, item_keys: bytes) -> bytes: ...
    def sender_entries(self, q: bytes, s: bytes, code_key: bytes, hash_seed: bytes, xs: bytes,
                       item_keys: bytes, positions: bytes, tag_len: int) -> bytes: ...
    def group_payloads(self, group: bytes, groups: int, payloads: Sequence[bytes]) -> tuple[bytes, bytes]: ...
    def seal(self, item_keys: bytes, plains: bytes, lengths: bytes, order: bytes) -> bytes: ...
    def open_sealed(self, body: bytes, first: int, pending: bytes) -> tuple[int, bytes, bytes, bytes]: ...
    def receiver_index(self, f: bytes, table: bytes, tag_len: int) -> bytes: ...
    def lookup(self, index: bytes, entries: bytes, tag_len: int) -> bytes: ...
    def label_book(self) -> LabelBook: ...


def _ecb(key: bytes, blocks: bytes) -> bytes:
    """The AES block function on each block (fixed-key hashing, the code, CTR counters), not a mode of encryption."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(blocks) + encryptor.finalize()


def _tweaked(key: bytes, xs: np.ndarray, a: int, b: int) -> np.ndarray:
    """AES_key(x ^ (a, b, 0...)) of each row of xs (n x 16): n x 16."""
    blocks = xs.copy()
    blocks[:, 0] ^= a
    blocks[:, 1] ^= b
    return np.frombuffer(_ecb(key, blocks.tobytes()), np.uint8).reshape(-1, 16)


def _rows16(xs: bytes) -> np.ndarray:
    return np.frombuffer(xs, np.uint8).reshape(-1, X_BYTES)


def _bins(seed: bytes, xs: bytes, bins: int) -> np.ndarray:
    """h_i(x) = LE64(AES_seed(x ^ i)[0:8]) mod bins: n x 3."""
    rows = _rows16(xs)
    columns = [_tweaked(seed, rows, i, 0)[:, :8].copy().view("<u8")[:, 0] % np.uint64(bins) for i in range(HASHES)]
    return np.stack(columns, axis=1) if columns[0].size else np.zeros((0, HASHES), np.uint64)


def _codes(code_key: bytes, xs: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """C(x, i) = AES_codekey(x ^ (i, c)) for c in 0..4, one row per (x, i): n x 64."""
    out = np.empty((len(xs), ROW_BYTES), np.uint8)
    for i in range(HASHES):
        rows = hashes == i
        for c in range(4):
            out[rows, 16 * c:16 * (c + 1)] = _tweaked(code_key, xs[rows], i, c)
    return out


def _oprf(j: int, t: bytes) -> bytes:
    return hashlib.sha256(LABEL_OPRF + j.to_bytes(8, "little") + t).digest()


def _prg_rows(keys: bytes, r0: int, r1: int) -> np.ndarray:
    """Rows [r0, r1) of the column seeds' AES-CTR matrix (docs/protocol.md): (r1 - r0) x 64."""
    first, last = r0 // 128, -(-r1 // 128)
    counters = b"".join(b.to_bytes(16, "little") for b in range(first, last))
    columns = np.stack([np.frombuffer(_ecb(keys[i * 16:(i + 1) * 16], counters), np.uint8)
                        for i in range(WIDTH_BITS)])
    bits = np.unpackbits(columns, axis=1, bitorder="little")  # 512 x rows
    rows = np.packbits(bits.T, axis=1, bitorder="little")
    return rows[r0 - first * 128:r1 - first * 128]


def _u32s(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<u4")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _length_prefixed(data: bytes, at: int, what: str) -> bytes:
    """The value at `at` of (u32 LE length || value) records."""
    if len(data) - at < 4 or len(data) - at - 4 < int.from_bytes(data[at:at + 4], "little"):
        raise MalformedMessageError(f"{what} is not whole payloads")
    return data[at + 4:at + 4 + int.from_bytes(data[at:at + 4], "little")]


def _seal_key(item_key: bytes) -> bytes:
    return hashlib.sha256(LABEL_SEAL + item_key).digest()


class PythonKernels:
    """The reference: numpy, AES from `cryptography`, ristretto255 from libsodium."""

    name = "python"

    def digests(self, keys: Sequence[bytes]) -> bytes:
        return b"".join(hashlib.sha256(LABEL_ITEM + k).digest()[:X_BYTES] for k in keys)

    def cuckoo(self, xs: bytes, seed: bytes, bins: int) -> bytes | None:
        candidates = _bins(seed, xs, bins).astype(np.int64).tolist()
        table = [EMPTY] * bins
        for item in range(len(candidates)):
            current, i, evictions = item, 0, 0
            while True:
                free = next((h for h in ((i + d) % HASHES for d in range(HASHES))
                             if table[candidates[current][h]] == EMPTY), None)
                if free is not None:
                    table[candidates[current][free]] = current * 3 + free
                    break
                if evictions == MAX_EVICTIONS:
                    return None
                evictions += 1
                slot = candidates[current][i]
                evicted = table[slot]
                table[slot] = current * 3 + i
                current, i = evicted // 3, (evicted % 3 + 1) % HASHES
        return bytes(np.array(table, "<u4").tobytes())

    def ot_point(self, a_wide: bytes) -> bytes:
        return group.scalar_mult_base(self._scalar(a_wide))

    @staticmethod
    def _scalar(wide: bytes) -> bytes:
        scalar = group.scalar_from_wide_bytes(wide)
        if group.is_zero_scalar(scalar):
            raise ValueError("zero scalar")
        return scalar

    @staticmethod
    def _key(i: int, a: bytes, b: bytes, p: bytes) -> bytes:
        return hashlib.sha256(LABEL_BASE_OT + i.to_bytes(2, "little") + a + b + p).digest()[:KEY_BYTES]

    def ot_choose(self, a_point: bytes, b_wides: bytes, choices: bytes) -> tuple[bytes, bytes]:
        group.check_element(a_point)
        points, keys = [], []
        for i in range(WIDTH_BITS):
            b = self._scalar(b_wides[i * WIDE_BYTES:(i + 1) * WIDE_BYTES])
            bg = group.scalar_mult_base(b)
            big_b = bytes(rbcl.crypto_core_ristretto255_add(bg, a_point)) if choices[i // 8] >> (i % 8) & 1 else bg
            points.append(big_b)
            keys.append(self._key(i, a_point, big_b, group.scalar_mult(b, a_point)))
        return b"".join(points), b"".join(keys)

    def ot_keys(self, a_wide: bytes, b_points: bytes) -> tuple[bytes, bytes]:
        if len(b_points) != WIDTH_BITS * POINT_BYTES:
            raise MalformedMessageError("one point per base OT")
        a = self._scalar(a_wide)
        big_a = group.scalar_mult_base(a)
        aa = group.scalar_mult(a, big_a)
        k0, k1 = [], []
        for i in range(WIDTH_BITS):
            point = b_points[i * POINT_BYTES:(i + 1) * POINT_BYTES]
            ab = group.scalar_mult_peer(a, point)
            k0.append(self._key(i, big_a, point, ab))
            k1.append(self._key(i, big_a, point, bytes(rbcl.crypto_core_ristretto255_sub(ab, aa))))
        return b"".join(k0), b"".join(k1)

    def receiver_rows(self, k0: bytes, k1: bytes, code_key: bytes, xs: bytes, table: bytes,
                      r0: int) -> tuple[bytes, bytes]:
        entries = _u32s(table).astype(np.int64)
        r1 = r0 + len(entries)
        t, g1 = _prg_rows(k0, r0, r1), _prg_rows(k1, r0, r1)
        occupied = np.nonzero(entries != EMPTY)[0]
        codes = np.zeros_like(t)
        codes[occupied] = _codes(code_key, _rows16(xs)[entries[occupied] // 3], entries[occupied] % 3)
        f = bytearray(len(entries) * F_BYTES)
        for row in occupied.tolist():
            f[row * F_BYTES:(row + 1) * F_BYTES] = _oprf(r0 + row, t[row].tobytes())
        return (t ^ g1 ^ codes).tobytes(), bytes(f)

    def sender_rows(self, ks: bytes, s: bytes, u: bytes, r0: int) -> bytes:
        rows = np.frombuffer(u, np.uint8).reshape(-1, ROW_BYTES)
        mask = np.frombuffer(s, np.uint8)
        return bytes((_prg_rows(ks, r0, r0 + len(rows)) ^ (rows & mask)).tobytes())

    def groups(self, xs: bytes) -> tuple[bytes, bytes]:
        first: dict[bytes, int] = {}
        group_of = [first.setdefault(xs[k:k + X_BYTES], len(first)) for k in range(0, len(xs), X_BYTES)]
        return b"".join(first), np.array(group_of, "<u4").tobytes()

    def positions(self, item_keys: bytes) -> bytes:
        keys = [item_keys[g * KEY_BYTES:(g + 1) * KEY_BYTES] for g in range(len(item_keys) // KEY_BYTES)]
        position = np.zeros(len(keys), "<u4")
        for p, g in enumerate(sorted(range(len(keys)), key=lambda g: (keys[g], g))):
            position[g] = p
        return position.tobytes()

    def sender_entries(self, q: bytes, s: bytes, code_key: bytes, hash_seed: bytes, xs: bytes,
                       item_keys: bytes, positions: bytes, tag_len: int) -> bytes:
        bins = len(q) // ROW_BYTES
        rows = _rows16(xs)
        where = _bins(hash_seed, xs, bins).astype(np.int64)
        mask = np.frombuffer(s, np.uint8)
        qs = np.frombuffer(q, np.uint8).reshape(-1, ROW_BYTES)
        position = _u32s(positions)
        entries = []
        for i in range(HASHES):
            codes = _codes(code_key, rows, np.full(len(rows), i))
            for g in range(len(rows)):
                j = int(where[g, i])
                f = _oprf(j, (qs[j] ^ (codes[g] & mask)).tobytes())
                secret = item_keys[g * KEY_BYTES:(g + 1) * KEY_BYTES] + int(position[g]).to_bytes(4, "little")
                entries.append(f[:tag_len] + _xor(f[F_BYTES - MASKED_BYTES:], secret))
        return b"".join(sorted(entries))

    def group_payloads(self, group: bytes, groups: int, payloads: Sequence[bytes]) -> tuple[bytes, bytes]:
        plains: list[list[bytes]] = [[] for _ in range(groups)]
        for g, payload in zip(_u32s(group).tolist(), payloads, strict=True):
            plains[g].append(len(payload).to_bytes(4, "little") + payload)
        joined = [b"".join(p) for p in plains]
        return b"".join(joined), np.array([len(p) for p in joined], "<u4").tobytes()

    def seal(self, item_keys: bytes, plains: bytes, lengths: bytes, order: bytes) -> bytes:
        ends = np.cumsum(_u32s(lengths), dtype=np.int64).tolist()
        out = []
        for g in _u32s(order).tolist():
            plain = plains[(ends[g - 1] if g else 0):ends[g]]
            sealed = AESSIV(_seal_key(item_keys[g * KEY_BYTES:(g + 1) * KEY_BYTES])).encrypt(plain, [LABEL_PAYLOAD])
            out.append(len(sealed).to_bytes(4, "little") + sealed)
        return b"".join(out)

    def open_sealed(self, body: bytes, first: int, pending: bytes) -> tuple[int, bytes, bytes, bytes]:
        records, at = [], 0
        while at < len(body):
            records.append(_length_prefixed(body, at, "sealed chunk"))
            at += 4 + len(records[-1])
        items, data, lengths = [], [], []
        for k in range(0, len(pending), 24):
            position, item = int.from_bytes(pending[k:k + 4], "little"), pending[k + 4:k + 8]
            if not first <= position < first + len(records):
                continue
            try:
                plain = AESSIV(_seal_key(pending[k + 8:k + 24])).decrypt(records[position - first], [LABEL_PAYLOAD])
            except InvalidTag:  # a false tag match (also a body shorter than the IV)
                continue
            at = 0
            while at < len(plain):
                payload = _length_prefixed(plain, at, "payload group")
                items.append(item)
                data.append(payload)
                lengths.append(len(payload))
                at += 4 + len(payload)
        return len(records), b"".join(items), b"".join(data), np.array(lengths, "<u4").tobytes()

    def receiver_index(self, f: bytes, table: bytes, tag_len: int) -> bytes:
        records = []
        for j, entry in enumerate(_u32s(table).tolist()):
            if entry != EMPTY:
                out = f[j * F_BYTES:(j + 1) * F_BYTES]
                records.append(out[:tag_len] + out[F_BYTES - MASKED_BYTES:] + (entry // 3).to_bytes(4, "little"))
        return b"".join(sorted(records))

    def lookup(self, index: bytes, entries: bytes, tag_len: int) -> bytes:
        width, size = record_bytes(tag_len), tag_len + MASKED_BYTES
        by_tag: dict[bytes, list[bytes]] = {}
        for k in range(0, len(index), width):
            by_tag.setdefault(index[k:k + tag_len], []).append(index[k:k + width])
        out, previous = [], b""
        for k in range(0, len(entries), size):
            entry = entries[k:k + size]
            tag = entry[:tag_len]
            if tag < previous:
                raise MalformedMessageError("entries are not sorted")
            previous = tag
            for record in by_tag.get(tag, []):
                unmasked = _xor(record[tag_len:tag_len + MASKED_BYTES], entry[tag_len:])
                out.append(record[tag_len + MASKED_BYTES:] + unmasked)
        return b"".join(out)

    def label_book(self) -> LabelBook:
        return _PythonLabelBook()


class _PythonLabelBook:
    def __init__(self) -> None:
        self._numbers: dict[bytes, int] = {}

    def open(self, data: bytes, lengths: bytes) -> tuple[bytes, bytes]:
        out, keys, at = [], [], 0
        for length in _u32s(lengths).tolist():
            key, sealed = data[at:at + LABEL_KEY_BYTES], data[at + LABEL_KEY_BYTES:at + length]
            at += length
            plain = tags.open_label(key, sealed) if length > LABEL_KEY_BYTES else None
            out.append(NOT_OPENED if plain is None else self._numbers.setdefault(plain, len(self._numbers)))
            keys.append(bytes(followup.FOLLOWUP_KEY_BYTES) if plain is None else followup.followup_key(key))
        return np.array(out, "<u4").tobytes(), b"".join(keys)

    def decoded(self) -> tuple[list[str], list[str]]:
        try:
            labels = [tags.decode_label(label) for label in self._numbers]
        except UnicodeDecodeError:
            raise MalformedMessageError("a label is not UTF-8") from None
        return [reference for reference, _ in labels], [category for _, category in labels]


class _NativeModule(Protocol):
    BulkMalformed: type[ValueError]

    def bulk_digests(self, data: bytes, lengths: bytes, /) -> bytes: ...
    def bulk_cuckoo(self, xs: bytes, seed: bytes, bins: int, /) -> bytes | None: ...
    def bulk_ot_point(self, a_wide: bytes, /) -> bytes: ...
    def bulk_ot_choose(self, a_point: bytes, b_wides: bytes, choices: bytes, /) -> tuple[bytes, bytes]: ...
    def bulk_ot_keys(self, a_wide: bytes, b_points: bytes, /) -> tuple[bytes, bytes]: ...
    def bulk_receiver_rows(self, k0: bytes, k1: bytes, code_key: bytes, xs: bytes, table: bytes,
                           r0: int, /) -> tuple[bytes, bytes]: ...
    def bulk_sender_rows(self, ks: bytes, s: bytes, u: bytes, r0: int, /) -> bytes: ...
    def bulk_groups(self, xs: bytes, /) -> tuple[bytes, bytes]: ...
    def bulk_positions(self, item_keys: bytes, /) -> bytes: ...
    def bulk_sender_entries(self, q: bytes, s: bytes, code_key: bytes, hash_seed: bytes, xs: bytes,
                            item_keys: bytes, positions: bytes, tag_len: int, /) -> bytes: ...
    def bulk_group_payloads(self, group: bytes, groups: int, data: bytes, lengths: bytes, /) -> tuple[bytes, bytes]: ...
    def bulk_seal(self, item_keys: bytes, data: bytes, lengths: bytes, order: bytes, /) -> bytes: ...
    def bulk_open_sealed(self, body: bytes, first: int, pending: bytes, /) -> tuple[int, bytes, bytes, bytes]: ...
    def bulk_receiver_index(self, f: bytes, table: bytes, tag_len: int, /) -> bytes: ...
    def bulk_lookup(self, index: bytes, entries: bytes, tag_len: int, /) -> bytes: ...
    def BulkLabels(self, ad: bytes, info: bytes, /) -> _NativeLabels: ...  # noqa: N802 (a class)


class _NativeLabels(Protocol):
    def open(self, data: bytes, lengths: bytes, /) -> tuple[bytes, bytes]: ...
    def decoded(self) -> tuple[list[str], list[str]]: ...


def _packed(values: Sequence[bytes]) -> tuple[bytes, bytes]:
    return b"".join(values), np.fromiter(map(len, values), "<u4", len(values)).tobytes()


class NativeKernels:
    """`psi_native`'s `bulk_*` calls; its BulkMalformed becomes MalformedMessageError."""

    name = "native"

    def __init__(self, module: _NativeModule) -> None:
        self._n = module

    def _peer(self, exc: ValueError) -> MalformedMessageError:
        return MalformedMessageError(str(exc))

    def digests(self, keys: Sequence[bytes]) -> bytes:
        return self._n.bulk_digests(*_packed(keys))

    def cuckoo(self, xs: bytes, seed: bytes, bins: int) -> bytes | None:
        return self._n.bulk_cuckoo(xs, seed, bins)

    def ot_point(self, a_wide: bytes) -> bytes:
        return self._n.bulk_ot_point(a_wide)

    def ot_choose(self, a_point: bytes, b_wides: bytes, choices: bytes) -> tuple[bytes, bytes]:
        try:
            return self._n.bulk_ot_choose(a_point, b_wides, choices)
        except self._n.BulkMalformed as exc:
            raise self._peer(exc) from None

    def ot_keys(self, a_wide: bytes, b_points: bytes) -> tuple[bytes, bytes]:
        try:
            return self._n.bulk_ot_keys(a_wide, b_points)
        except self._n.BulkMalformed as exc:
            raise self._peer(exc) from None

    def receiver_rows(self, k0: bytes, k1: bytes, code_key: bytes, xs: bytes, table: bytes,
                      r0: int) -> tuple[bytes, bytes]:
        return self._n.bulk_receiver_rows(k0, k1, code_key, xs, table, r0)

    def sender_rows(self, ks: bytes, s: bytes, u: bytes, r0: int) -> bytes:
        return self._n.bulk_sender_rows(ks, s, u, r0)

    def groups(self, xs: bytes) -> tuple[bytes, bytes]:
        return self._n.bulk_groups(xs)

    def positions(self, item_keys: bytes) -> bytes:
        return self._n.bulk_positions(item_keys)

    def sender_entries(self, q: bytes, s: bytes, code_key: bytes, hash_seed: bytes, xs: bytes,
                       item_keys: bytes, positions: bytes, tag_len: int) -> bytes:
        return self._n.bulk_sender_entries(q, s, code_key, hash_seed, xs, item_keys, positions, tag_len)

    def group_payloads(self, group: bytes, groups: int, payloads: Sequence[bytes]) -> tuple[bytes, bytes]:
        return self._n.bulk_group_payloads(group, groups, *_packed(payloads))

    def seal(self, item_keys: bytes, plains: bytes, lengths: bytes, order: bytes) -> bytes:
        return self._n.bulk_seal(item_keys, plains, lengths, order)

    def open_sealed(self, body: bytes, first: int, pending: bytes) -> tuple[int, bytes, bytes, bytes]:
        try:
            return self._n.bulk_open_sealed(body, first, pending)
        except self._n.BulkMalformed as exc:
            raise self._peer(exc) from None

    def receiver_index(self, f: bytes, table: bytes, tag_len: int) -> bytes:
        return self._n.bulk_receiver_index(f, table, tag_len)

    def lookup(self, index: bytes, entries: bytes, tag_len: int) -> bytes:
        try:
            return self._n.bulk_lookup(index, entries, tag_len)
        except self._n.BulkMalformed as exc:
            raise self._peer(exc) from None

    def label_book(self) -> LabelBook:
        # The formats of psi.tags and psi.followup, whose constants the native book takes.
        return _NativeLabelBook(self._n.BulkLabels(tags.LABEL_AD, followup.FOLLOWUP_INFO), self._n.BulkMalformed)


class _NativeLabelBook:
    def __init__(self, book: _NativeLabels, malformed: type[ValueError]) -> None:
        self._book, self._malformed = book, malformed

    def open(self, data: bytes, lengths: bytes) -> tuple[bytes, bytes]:
        return self._book.open(data, lengths)

    def decoded(self) -> tuple[list[str], list[str]]:
        try:
            return self._book.decoded()
        except self._malformed as exc:
            raise MalformedMessageError(str(exc)) from None


PYTHON = PythonKernels()


def load_native() -> NativeKernels | None:
    """The native kernels, or None when `psi_native` is missing or predates these kernels (its label book)."""
    module = backend.native_module()
    if module is None or not hasattr(module, "BulkLabels"):
        return None
    return NativeKernels(cast(_NativeModule, module))


def kernels() -> Kernels:
    """The kernels matching the active OPRF backend: native when it is, else the reference."""
    if backend.active().name.startswith("native"):
        native = load_native()
        if native is not None:
            return native
    return PYTHON
