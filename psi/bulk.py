"""Bulk mode: a semi-honest KKRT16 OT-extension OPRF PSI for two large lists (docs/protocol.md, "Bulk mode").

Pure protocol state machines, no network and no files: the client (`BulkReceiver`, the KKRT
receiver) learns which of its keys the server (`BulkSender`, the KKRT sender) also holds,
with the server's payloads for them; the server learns the client's item count only.

    receiver.hello()                     -> sender.setup(hello)
    receiver.corrections(setup, size)    -> sender.absorb(chunk) for each
    sender.results(size)                 -> receiver.open(chunk) for each, then receiver.finish()

The sender's list is prepared once (`sender_list`) and shared, read-only, by every session over it
(`BulkSender`). Messages are opaque bytes (layouts in docs/protocol.md); the heavy loops are
`psi.bulk_kernels`.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from psi import bulk_kernels as bk
from psi.errors import CryptoError, InputError, MalformedMessageError, OutOfOrderError

SUITE = "kkrt16-ristretto255-aes128-sha256"
MAX_ITEMS = 1 << 26  # per side: tags stay within 12 bytes, positions within u32

HELLO, SETUP, CORRECTIONS, ENTRIES, SEALED = 1, 2, 3, 4, 5
_HELLO = struct.Struct("<BQ16s32s")  # type, receiver items, cuckoo hash seed, base-OT point A
_SETUP = struct.Struct("<BQB16s")  # type, sender items, tag length, code key; then the points B_i
_CHUNK = struct.Struct("<BQ")  # type, index of the first row / entry / sealed payload
_SETUP_BYTES = _SETUP.size + bk.WIDTH_BITS * bk.POINT_BYTES
_MATCH = np.dtype([("item", "<u4"), ("key", "S16"), ("position", "<u4")])  # what lookup returns
_PENDING = np.dtype([("position", "<u4"), ("item", "<u4"), ("key", "S16")])  # what open_sealed takes
MAX_SEEDS = 64  # cuckoo re-seeds before giving up (each fails with probability < 2^-40)

Rng = Callable[[int], bytes]


def bins(items: int) -> int:
    """Cuckoo bins for `items` receiver items: 1.27 n (PSZ18, 3 hash functions, no stash),
    plus one 128-row block of slack for small sets, rounded up to whole 128-row blocks."""
    return 128 * (math.ceil(math.ceil(1.27 * items) / 128) + 1)


def announced_items(hello: bytes) -> int:
    """The receiver's item count in a hello, for admission before anything is built."""
    return _parse_hello(hello)[0]


def _parse_hello(hello: bytes) -> tuple[int, bytes, bytes]:
    if len(hello) != _HELLO.size or hello[0] != HELLO:
        raise MalformedMessageError("not a bulk hello")
    _, items, seed, point = _HELLO.unpack(hello)
    if items > MAX_ITEMS:
        raise MalformedMessageError(f"more than {MAX_ITEMS} receiver items")
    return items, seed, point


def _chunk(chunk: bytes, kind: int, width: int, expected_first: int, total: int, what: str) -> tuple[bytes, int]:
    """A chunk's body and item count, checked: its kind, its place, whole items, not past the total."""
    if len(chunk) < _CHUNK.size or chunk[0] != kind:
        raise MalformedMessageError(f"not a {what} chunk")
    _, first = _CHUNK.unpack_from(chunk)
    body = chunk[_CHUNK.size:]
    if first != expected_first:
        raise MalformedMessageError(f"{what} chunk out of order: starts at {first}, expected {expected_first}")
    if len(body) % width:
        raise MalformedMessageError(f"{what} chunk is not whole items")
    if expected_first + len(body) // width > total:
        raise MalformedMessageError(f"more {what} than announced")
    return body, len(body) // width


@dataclass(frozen=True)
class Hits:
    """A result chunk's hits, packed (`BulkReceiver.open`): per hit its key (an index into the receiver's keys)
    and its payload (an index into the chunk's payloads); the payloads back to back, with their u32 lengths.
    Copies of a key share their item's payload. Iterating gives (key, payload bytes) per hit."""

    keys: np.ndarray
    payloads: np.ndarray
    data: bytes = field(repr=False)
    lengths: bytes = field(repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        ends = np.cumsum(np.frombuffer(self.lengths, "<u4"), dtype=np.int64).tolist()
        starts = [0, *ends]
        for key, payload in zip(self.keys.tolist(), self.payloads.tolist(), strict=True):
            yield key, self.data[starts[payload]:ends[payload]]


_NO_HITS = Hits(np.zeros(0, np.int64), np.zeros(0, np.int64), b"", b"")


def _rng(rng: Rng | None) -> Rng:
    if rng is None:
        return os.urandom

    def checked(n: int) -> bytes:
        out = rng(n)
        if len(out) != n:
            raise ValueError(f"rng gave {len(out)} bytes, not {n}")
        return out
    return checked


class BulkReceiver:
    """The client: its keys, the cuckoo table, base-OT keys, then the index of its OPRF outputs."""

    def __init__(self, keys: Sequence[bytes], *, rng: Rng | None = None, kernels: bk.Kernels | None = None) -> None:
        if len(keys) > MAX_ITEMS:
            raise InputError(f"at most {MAX_ITEMS} keys in bulk mode")
        self._k = kernels or bk.kernels()
        self._rng = _rng(rng)
        # Equal keys are one item: cuckoo hashing needs distinct items; hits go back to every copy.
        self._xs, owner_group = self._k.groups(self._k.digests(keys))
        self._n = len(self._xs) // bk.X_BYTES
        groups = np.frombuffer(owner_group, "<u4")
        self._owners = np.argsort(groups, kind="stable")
        self._owner_starts = np.concatenate(([0], np.cumsum(np.bincount(groups, minlength=self._n))))
        self._bins = bins(self._n)
        self._a_wide = b""
        self._table = b""
        self._seed = b""
        self._step = "new"
        self._groups = 0
        self._tag_len = 0
        self._index = b""
        self._outputs = b""  # the OPRF outputs of the bins, until they are indexed
        self._entries_seen = 0
        self._sealed_seen = 0
        self._last_tag = b""
        self._found: list[np.ndarray] = []  # per entries chunk: the matches (item, key, position)
        self._pending = b""  # all matches, sorted by position: position || item || key (24 bytes)

    def __repr__(self) -> str:
        return f"BulkReceiver(items={self._n}, bins={self._bins}, step={self._step!r})"

    @property
    def items(self) -> int:
        """Distinct keys: what the hello announces."""
        return self._n

    def hello(self) -> bytes:
        if self._step != "new":
            raise OutOfOrderError("hello sent already")
        self._a_wide = self._rng(bk.WIDE_BYTES)
        point = self._k.ot_point(self._a_wide)
        # A failed insertion draws a new seed: the server sees only a seed under which this set
        # inserts, which differs from a uniform seed with probability < 2^-40 (docs/protocol.md).
        for _ in range(MAX_SEEDS):
            seed = self._rng(bk.KEY_BYTES)
            table = self._k.cuckoo(self._xs, seed, self._bins)
            if table is not None:
                self._seed, self._table = seed, table
                break
        else:
            raise CryptoError("cuckoo hashing failed for every seed")
        self._step = "hello"
        return _HELLO.pack(HELLO, self._n, self._seed, point)

    @property
    def correction_bytes(self) -> int:
        """The correction rows' bytes (bins x 64), without the chunks' 9-byte headers."""
        if self._step in {"new", "hello"}:
            raise OutOfOrderError("no setup yet")
        return self._bins * bk.ROW_BYTES

    def corrections(self, setup: bytes, max_chunk_bytes: int) -> Iterator[bytes]:
        if self._step != "hello":
            raise OutOfOrderError("corrections before hello or twice")
        rows = (max_chunk_bytes - _CHUNK.size) // bk.ROW_BYTES
        if rows < 1:
            raise InputError("max_chunk_bytes holds no correction row")
        if len(setup) != _SETUP_BYTES or setup[0] != SETUP:
            raise MalformedMessageError("not a bulk setup")
        _, groups, tag_len, code_key = _SETUP.unpack_from(setup)
        if groups > MAX_ITEMS:
            raise MalformedMessageError(f"more than {MAX_ITEMS} sender items")
        if tag_len != bk.tag_bytes(self._n, groups):
            raise MalformedMessageError(f"tag length {tag_len}, expected {bk.tag_bytes(self._n, groups)}")
        k0, k1 = self._k.ot_keys(self._a_wide, setup[_SETUP.size:])
        self._groups, self._tag_len, self._step = groups, tag_len, "corrections"
        return self._correction_chunks(k0, k1, code_key, rows if rows < 128 else rows - rows % 128)

    def _correction_chunks(self, k0: bytes, k1: bytes, code_key: bytes, rows: int) -> Iterator[bytes]:
        outputs = bytearray(self._bins * bk.F_BYTES)
        for r0 in range(0, self._bins, rows):
            r1 = min(r0 + rows, self._bins)
            u, f = self._k.receiver_rows(k0, k1, code_key, self._xs, self._table[4 * r0:4 * r1], r0)
            outputs[r0 * bk.F_BYTES:r1 * bk.F_BYTES] = f
            yield _CHUNK.pack(CORRECTIONS, r0) + u
        self._outputs = bytes(outputs)
        self._step = "results"

    def build_index(self) -> None:
        """Index the OPRF outputs for the results, once: the first result does it, or the caller earlier,
        while the sender computes its results."""
        if self._step != "results":
            raise OutOfOrderError("the index follows the corrections")
        if self._outputs:
            self._index = self._k.receiver_index(self._outputs, self._table, self._tag_len)
            self._outputs = self._table = b""

    def open(self, chunk: bytes) -> Hits:
        """One result chunk: the hits it completes."""
        if self._step != "results":
            raise OutOfOrderError("results before all corrections were sent")
        if chunk[:1] == bytes([ENTRIES]):
            self._open_entries(chunk)
            return _NO_HITS
        if self._entries_seen != bk.HASHES * self._groups:
            raise MalformedMessageError("sealed payloads before all entries")
        return self._open_sealed(chunk)

    def _open_entries(self, chunk: bytes) -> None:
        size = self._tag_len + bk.MASKED_BYTES
        body, count = _chunk(chunk, ENTRIES, size, self._entries_seen, bk.HASHES * self._groups, "entries")
        if count and body[:self._tag_len] < self._last_tag:
            raise MalformedMessageError("entries are not sorted")
        self.build_index()
        found = np.frombuffer(self._k.lookup(self._index, body, self._tag_len), _MATCH)
        # A false tag match (< 2^-40) unmasks garbage: a position past the end names no payload.
        self._found.append(found[found["position"] < self._groups])
        if count:
            self._last_tag = body[(count - 1) * size:(count - 1) * size + self._tag_len]
        self._entries_seen += count

    def _open_sealed(self, chunk: bytes) -> Hits:
        if len(chunk) < _CHUNK.size or chunk[0] != SEALED:
            raise MalformedMessageError("not a result chunk")
        _, first = _CHUNK.unpack_from(chunk)
        if first != self._sealed_seen:
            raise MalformedMessageError(f"sealed chunk out of order: starts at {first}, expected {self._sealed_seen}")
        if self._found:
            found = np.concatenate(self._found)
            found = found[np.argsort(found["position"], kind="stable")]
            pending = np.rec.fromarrays([found["position"], found["item"], found["key"]], dtype=_PENDING)
            self._pending = pending.tobytes()
            self._found = []
        count, items, data, lengths = self._k.open_sealed(chunk[_CHUNK.size:], first, self._pending)
        if first + count > self._groups:
            raise MalformedMessageError("more sealed payloads than announced")
        self._sealed_seen = first + count
        return self._hits(np.frombuffer(items, "<u4"), data, lengths)

    def _hits(self, items: np.ndarray, data: bytes, lengths: bytes) -> Hits:
        """Each opened payload once per copy of its item among the receiver's keys."""
        starts = self._owner_starts[items]
        copies = self._owner_starts[items + 1] - starts
        # Payload h once for each of its item's copies: owners starts[h] .. starts[h] + copies[h] - 1.
        payloads = np.repeat(np.arange(len(items)), copies)
        copy = np.arange(len(payloads)) - np.repeat(np.cumsum(copies) - copies, copies)
        return Hits(self._owners[starts[payloads] + copy], payloads, data, lengths)

    def finish(self) -> None:
        """Check that every result chunk arrived."""
        if self._step != "results":
            raise OutOfOrderError("finish before the results")
        if self._entries_seen != bk.HASHES * self._groups or self._sealed_seen != self._groups:
            raise MalformedMessageError(
                f"results incomplete: {self._entries_seen} of {bk.HASHES * self._groups} entries, "
                f"{self._sealed_seen} of {self._groups} sealed payloads")
        self._step = "done"


@dataclass(frozen=True)
class SenderList:
    """The sender's list as every session over it starts: its distinct keys' digests, each with its records'
    payloads (length-prefixed) in one plaintext, and those plaintexts' lengths. Immutable bytes, so any
    number of sessions may share one."""

    xs: bytes = field(repr=False)  # one digest per distinct key (X_BYTES each)
    plains: bytes = field(repr=False)
    plain_lengths: bytes = field(repr=False)  # u32 per distinct key
    groups: int  # distinct keys


def sender_list(keys: Sequence[bytes], payloads: Sequence[bytes], kernels: bk.Kernels | None = None) -> SenderList:
    """Records sharing a key become one item whose payload carries all of theirs."""
    if len(keys) != len(payloads):
        raise InputError("one payload per key")
    k = kernels or bk.kernels()
    xs, record_group = k.groups(k.digests(keys))
    groups = len(xs) // bk.X_BYTES
    if groups > MAX_ITEMS:
        raise InputError(f"at most {MAX_ITEMS} distinct keys in bulk mode")
    plains, lengths = k.group_payloads(record_group, groups, payloads)
    return SenderList(bytes(xs), bytes(plains), bytes(lengths), groups)


class BulkSender:
    """The server, one session over a prepared list (`sender_list`, only read): base-OT choices s, then Q."""

    def __init__(self, prepared: SenderList, *, max_receiver_items: int, rng: Rng | None = None,
                 kernels: bk.Kernels | None = None) -> None:
        self._k = kernels or bk.kernels()
        self._rng = _rng(rng)
        self._max = min(max_receiver_items, MAX_ITEMS)
        self._xs, self._groups = prepared.xs, prepared.groups
        self._plains, self._plain_lengths = prepared.plains, prepared.plain_lengths
        self._step = "new"
        self._bins = 0
        self._rows = 0
        self._q = bytearray()
        self._s = self._ks = self._code_key = self._seed = b""
        self._tag_len = 0
        self._sealed: tuple[bytes, bytes, bytes, np.ndarray] | None = None  # item keys, positions, sealed, ends

    def __repr__(self) -> str:
        return f"BulkSender(items={self._groups}, bins={self._bins}, step={self._step!r})"

    def setup(self, hello: bytes) -> bytes:
        if self._step != "new":
            raise OutOfOrderError("setup twice")
        items, self._seed, point = _parse_hello(hello)
        if items > self._max:
            raise MalformedMessageError(f"{items} receiver items, more than the {self._max} allowed")
        self._s = self._rng(bk.ROW_BYTES)
        b_wides = self._rng(bk.WIDTH_BITS * bk.WIDE_BYTES)
        points, self._ks = self._k.ot_choose(point, b_wides, self._s)
        self._code_key = self._rng(bk.KEY_BYTES)
        self._bins = bins(items)
        self._tag_len = bk.tag_bytes(items, self._groups)
        self._q = bytearray(self._bins * bk.ROW_BYTES)
        self._step = "absorb"
        return _SETUP.pack(SETUP, self._groups, self._tag_len, self._code_key) + points

    @property
    def correction_bytes(self) -> int:
        """The correction rows' bytes expected (bins x 64), without the chunks' headers."""
        if self._step == "new":
            raise OutOfOrderError("no setup yet")
        return self._bins * bk.ROW_BYTES

    def absorb(self, chunk: bytes) -> None:
        if self._step != "absorb":
            raise OutOfOrderError("corrections before setup or after the last row")
        body, rows = _chunk(chunk, CORRECTIONS, bk.ROW_BYTES, self._rows, self._bins, "correction")
        if rows == 0:
            raise MalformedMessageError("empty correction chunk")
        self._q[self._rows * bk.ROW_BYTES:(self._rows + rows) * bk.ROW_BYTES] = \
            self._k.sender_rows(self._ks, self._s, body, self._rows)
        self._rows += rows
        if self._rows == self._bins:
            self._step = "results"

    @property
    def result_count(self) -> int:
        """Items in the result stream: 3 entries and one sealed payload per distinct key."""
        return (bk.HASHES + 1) * self._groups

    def results(self, max_chunk_bytes: int) -> Iterator[bytes]:
        if self._step != "results":
            raise OutOfOrderError("results before all corrections")
        size = self._tag_len + bk.MASKED_BYTES
        per_chunk = (max_chunk_bytes - _CHUNK.size) // size
        if per_chunk < 1:
            raise InputError("max_chunk_bytes holds no result entry")
        item_keys, positions, sealed, ends = self._sealed or self._seal()
        entries = self._k.sender_entries(bytes(self._q), self._s, self._code_key, self._seed, self._xs,
                                         item_keys, positions, self._tag_len)
        self._q = bytearray()  # Q and s are spent: nothing else is evaluated in this session
        self._s = self._ks = b""
        self._sealed = None
        self._step = "done"
        return self._result_chunks(entries, size, per_chunk, sealed, ends, max_chunk_bytes)

    def seal(self) -> None:
        """Draw the session's item keys and seal each item's payload under its key, in the order of its
        position. Only the list and the randomness go in, not the corrections, so the server may run this
        while they arrive (in another thread than `absorb`); otherwise `results` does."""
        if self._step not in {"absorb", "results"} or self._sealed is not None:
            raise OutOfOrderError("sealing belongs between setup and the results, once")
        self._sealed = self._seal()

    def _seal(self) -> tuple[bytes, bytes, bytes, np.ndarray]:
        item_keys = self._rng(bk.KEY_BYTES * self._groups)
        positions = self._k.positions(item_keys)
        order = np.argsort(np.frombuffer(positions, "<u4"), kind="stable").astype("<u4")
        sealed = self._k.seal(item_keys, self._plains, self._plain_lengths, order.tobytes())
        lengths = np.frombuffer(self._plain_lengths, "<u4").astype(np.int64)[order]
        return item_keys, positions, sealed, np.cumsum(lengths + 4 + bk.SEAL_OVERHEAD)

    def _result_chunks(self, entries: bytes, size: int, per_chunk: int, sealed: bytes, ends: np.ndarray,
                       max_chunk_bytes: int) -> Iterator[bytes]:
        count = len(entries) // size
        for first in range(0, count, per_chunk):
            yield _CHUNK.pack(ENTRIES, first) + entries[first * size:(first + per_chunk) * size]
        if count == 0:
            yield _CHUNK.pack(ENTRIES, 0)
        # Whole sealed payloads per chunk: each chunk ends at the last payload end within budget.
        start, position = 0, 0
        while position < len(ends):
            stop = int(np.searchsorted(ends, start + max_chunk_bytes - _CHUNK.size, side="right"))
            if stop == position:
                raise InputError("a sealed payload group is larger than max_chunk_bytes")
            yield _CHUNK.pack(SEALED, position) + sealed[start:int(ends[stop - 1])]
            start, position = int(ends[stop - 1]), stop
