"""Bulk mode (KKRT16): results equal the plain intersection on both kernels, the kernels agree byte
for byte, and every damaged or misplaced message is refused with a protocol error."""

from __future__ import annotations

import gc
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.bulk import gc_paused
from psi import backend, bulk, followup, tags
from psi import bulk_kernels as bk
from psi.errors import InputError, MalformedMessageError, OutOfOrderError
from tests.vectors.make_bulk_vectors import FixedRng, transcript

NATIVE = bk.load_native()
KERNELS = [pytest.param(bk.PYTHON, id="python"),
           pytest.param(NATIVE, id="native", marks=pytest.mark.skipif(NATIVE is None, reason="psi_native not built"))]
CHUNK = 2048


def expected_hits(receiver: list[bytes], sender: list[bytes], payloads: list[bytes]) -> list[tuple[int, bytes]]:
    return sorted((i, p) for i, key in enumerate(receiver) for k, p in zip(sender, payloads, strict=True) if k == key)


def run(kernels: bk.Kernels, receiver: list[bytes], sender: list[bytes], payloads: list[bytes],
        chunk: int = CHUNK) -> list[tuple[int, bytes]]:
    return sorted(transcript(kernels, receiver, sender, payloads, chunk)["hits"])


keys = st.lists(st.binary(min_size=0, max_size=3), max_size=40)  # small alphabet: overlaps and duplicates


@pytest.mark.parametrize("kernels", KERNELS)
@settings(max_examples=12, deadline=None)
@given(receiver=keys, sender=keys, data=st.data())
def test_results_are_the_plain_intersection(kernels: bk.Kernels, receiver: list[bytes], sender: list[bytes],
                                            data: st.DataObject) -> None:
    payloads = data.draw(st.lists(st.binary(max_size=20), min_size=len(sender), max_size=len(sender)))
    assert run(kernels, receiver, sender, payloads) == expected_hits(receiver, sender, payloads)


@pytest.mark.parametrize("kernels", KERNELS)
def test_larger_sets_small_chunks(kernels: bk.Kernels) -> None:
    receiver = [b"r%d" % i for i in range(700)] + [b"both%d" % i for i in range(90)]
    sender = [b"s%d" % i for i in range(500)] + [b"both%d" % i for i in range(90)] * 2
    payloads = [b"payload %d" % i for i in range(len(sender))]
    assert run(kernels, receiver, sender, payloads, chunk=700) == expected_hits(receiver, sender, payloads)


@pytest.mark.parametrize("receiver, sender", [([], []), ([b"a"], []), ([], [b"a"]), ([b"a"], [b"a"])])
@pytest.mark.parametrize("kernels", KERNELS)
def test_empty_sides(kernels: bk.Kernels, receiver: list[bytes], sender: list[bytes]) -> None:
    payloads = [b"p"] * len(sender)
    assert run(kernels, receiver, sender, payloads) == expected_hits(receiver, sender, payloads)


@pytest.mark.skipif(NATIVE is None, reason="psi_native not built")
@settings(max_examples=8, deadline=None)
@given(receiver=keys, sender=keys)
def test_kernels_give_identical_messages(receiver: list[bytes], sender: list[bytes]) -> None:
    assert NATIVE is not None
    payloads = [b"p:" + k for k in sender]
    assert transcript(bk.PYTHON, receiver, sender, payloads) == transcript(NATIVE, receiver, sender, payloads)


# --- refusals -----------------------------------------------------------------------------------

def parties(kernels: bk.Kernels = bk.PYTHON) -> tuple[bulk.BulkReceiver, bulk.BulkSender]:
    receiver = bulk.BulkReceiver([b"a", b"b", b"c"], rng=FixedRng("r"), kernels=kernels)
    sender = bulk.BulkSender(bulk.sender_list([b"b", b"d"], [b"pb", b"pd"], kernels), max_receiver_items=10,
                             rng=FixedRng("s"), kernels=kernels)
    return receiver, sender


def through_corrections(kernels: bk.Kernels) -> tuple[bulk.BulkReceiver, bulk.BulkSender, list[bytes]]:
    receiver, sender = parties(kernels)
    corrections = list(receiver.corrections(sender.setup(receiver.hello()), CHUNK))
    for c in corrections:
        sender.absorb(c)
    return receiver, sender, list(sender.results(CHUNK))


def _packed(payloads: list[bytes]) -> tuple[bytes, bytes]:
    return b"".join(payloads), struct.pack(f"<{len(payloads)}I", *map(len, payloads))


@pytest.mark.parametrize("kernels", KERNELS)
def test_label_book(kernels: bk.Kernels) -> None:
    """A hit's payload (label key ‖ sealed label) opens to its label's number, the same for equal labels over
    every call, and its follow-up key; one that does not open to NOT_OPENED and a zero key."""
    keys = [bytes([i]) * 32 for i in range(3)]
    labels = [tags.encode_label("REF-0", "wanted"), tags.encode_label("REF-1", "a\x1fb"), b"no separator"]
    good = [k + tags.seal_label(k, label) for k, label in zip(keys, labels, strict=True)]
    wrong_key = keys[1] + good[0][32:]
    book = kernels.label_book()
    numbers, followup_keys = book.open(*_packed([good[0], wrong_key, good[2], keys[0] + b"short", good[0]]))
    none, zero = bk.NOT_OPENED, bytes(followup.FOLLOWUP_KEY_BYTES)
    assert struct.unpack("<5I", numbers) == (0, none, 1, none, 0)
    assert followup_keys == b"".join([followup.followup_key(keys[0]), zero, followup.followup_key(keys[2]), zero,
                                      followup.followup_key(keys[0])])
    assert book.open(*_packed([good[1], good[2]])) == (struct.pack("<2I", 2, 1),
                                                       followup.followup_key(keys[1]) + followup.followup_key(keys[2]))
    assert book.open(b"", b"") == (b"", b"")
    assert book.decoded() == (["REF-0", "no separator", "REF-1"], ["wanted", "", "a\x1fb"])


@pytest.mark.parametrize("kernels", KERNELS)
def test_a_label_that_is_not_utf8_is_refused(kernels: bk.Kernels) -> None:
    key = bytes(32)
    book = kernels.label_book()
    book.open(*_packed([key + tags.seal_label(key, b"REF\xff\x1fwanted")]))
    with pytest.raises(MalformedMessageError):
        book.decoded()


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_paused_restores_the_collector(enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(KeyError), gc_paused():
            assert not gc.isenabled()
            raise KeyError("a failed match")
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_announced_items() -> None:
    receiver, _ = parties()
    assert bulk.announced_items(receiver.hello()) == 3
    for bad in [b"", b"\x01" * 10, b"\x02" + bytes(56), bytes(57)]:
        with pytest.raises(MalformedMessageError):
            bulk.announced_items(bad)
    with pytest.raises(MalformedMessageError):
        bulk.announced_items(struct.pack("<BQ16s32s", 1, bulk.MAX_ITEMS + 1, bytes(16), bytes(32)))


@pytest.mark.parametrize("kernels", KERNELS)
def test_hello_refused(kernels: bk.Kernels) -> None:
    receiver, sender = parties(kernels)
    hello = receiver.hello()
    too_many = struct.pack("<BQ", 1, 11) + hello[9:]
    for bad in [hello[:-1], hello + b"\x00", too_many, hello[:25] + bytes(32), hello[:25] + b"\xff" * 32]:
        with pytest.raises(MalformedMessageError):
            parties(kernels)[1].setup(bad)
    sender.setup(hello)
    with pytest.raises(OutOfOrderError):
        sender.setup(hello)


@pytest.mark.parametrize("kernels", KERNELS)
def test_setup_refused(kernels: bk.Kernels) -> None:
    def fresh() -> bulk.BulkReceiver:
        r = bulk.BulkReceiver([b"a", b"b", b"c"], rng=FixedRng("r"), kernels=kernels)
        r.hello()
        return r
    receiver, sender = parties(kernels)
    setup = sender.setup(receiver.hello())
    wrong_tag = setup[:9] + bytes([setup[9] + 1]) + setup[10:]
    bad_point = setup[:-32] + b"\xff" * 32
    identity = setup[:-32] + bytes(32)
    too_many = setup[:1] + struct.pack("<Q", bulk.MAX_ITEMS + 1) + setup[9:]
    for bad in [b"", setup[:-1], setup + b"\x00", b"\x03" + setup[1:], wrong_tag, bad_point, identity, too_many,
                bytes(len(setup))]:
        with pytest.raises(MalformedMessageError):
            fresh().corrections(bad, CHUNK)
    with pytest.raises(OutOfOrderError):
        bulk.BulkReceiver([b"a"], kernels=kernels).corrections(setup, CHUNK)
    with pytest.raises(InputError):
        fresh().corrections(setup, 70)


@pytest.mark.parametrize("kernels", KERNELS)
def test_corrections_refused(kernels: bk.Kernels) -> None:
    receiver, sender = parties(kernels)
    with pytest.raises(OutOfOrderError):
        sender.absorb(b"\x03" + bytes(8 + 64))
    with pytest.raises(OutOfOrderError):
        next(iter(sender.results(CHUNK)))
    corrections = list(receiver.corrections(sender.setup(receiver.hello()), 64 * 100 + 9))
    assert sum(len(c) - 9 for c in corrections) == sender.correction_bytes == receiver.correction_bytes
    first = corrections[0]
    for bad in [b"", first[:8], first[:-1], b"\x04" + first[1:], first[:1] + struct.pack("<Q", 1) + first[9:],
                first[:9]]:
        with pytest.raises(MalformedMessageError):
            sender.absorb(bad)
    for c in corrections:
        sender.absorb(c)
    with pytest.raises(OutOfOrderError):  # too much: every row is in
        sender.absorb(corrections[-1])
    _, fresh = parties(kernels)
    fresh.setup(bulk.BulkReceiver([b"a", b"b", b"c"], rng=FixedRng("r"), kernels=kernels).hello())
    last_start = struct.unpack_from("<Q", corrections[-1], 1)[0]
    past_end = b"\x03" + struct.pack("<Q", 0) + bytes(64 * (last_start + 200))
    with pytest.raises(MalformedMessageError):
        fresh.absorb(past_end)


@pytest.mark.parametrize("kernels", KERNELS)
def test_results_refused(kernels: bk.Kernels) -> None:
    receiver, _, results = through_corrections(kernels)
    assert [r[0] for r in results] == [bulk.ENTRIES, bulk.SEALED]
    entries, sealed = results
    size = len(entries) - 9
    for bad in [b"", b"\x07" + entries[1:], entries[:-1], entries[:1] + struct.pack("<Q", 1) + entries[9:],
                entries + entries[9:9 + size // 6 * 3]]:
        r, _, _ = through_corrections(kernels)
        with pytest.raises(MalformedMessageError):
            r.open(bad)
    for bad in [sealed, sealed[:-1], sealed[:1] + struct.pack("<Q", 1) + sealed[9:], sealed + b"\x01\x00\x00"]:
        r, _, _ = through_corrections(kernels)
        if bad is not sealed:
            r.open(entries)
        with pytest.raises(MalformedMessageError):
            r.open(bad)
    unsorted = entries[:9] + b"".join(reversed([entries[9 + k:9 + k + size // 6] for k in range(0, size, size // 6)]))
    with pytest.raises(MalformedMessageError):
        through_corrections(kernels)[0].open(unsorted)
    receiver.open(entries)
    with pytest.raises(MalformedMessageError):
        receiver.finish()
    assert list(receiver.open(sealed)) == [(1, b"pb")]
    receiver.finish()


def test_step_order() -> None:
    receiver, sender = parties()
    with pytest.raises(OutOfOrderError):
        receiver.open(b"\x04" + bytes(8))
    with pytest.raises(OutOfOrderError):
        receiver.finish()
    with pytest.raises(OutOfOrderError):
        _ = sender.correction_bytes
    receiver.hello()
    with pytest.raises(OutOfOrderError):
        receiver.hello()
    with pytest.raises(InputError):
        bulk.sender_list([b"a"], [])


def test_repr_hides_secrets() -> None:
    receiver, sender = parties()
    sender.setup(receiver.hello())
    for party in (receiver, sender):
        text = repr(party)
        assert "step=" in text and len(text) < 80
    assert repr(bulk.sender_list([b"k"], [b"secret payload"], bk.PYTHON)) == "SenderList(groups=1)"


def test_bins_and_tags() -> None:
    assert bulk.bins(0) == 128
    assert bulk.bins(1 << 20) >= 1.27 * (1 << 20)
    assert bk.tag_bytes(1 << 20, 1 << 20) == 11


def test_kernels_follow_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSI_BACKEND", "python")
    backend.active.cache_clear()
    try:
        assert bk.kernels() is bk.PYTHON
    finally:
        backend.active.cache_clear()


@pytest.mark.parametrize("kernels", KERNELS)
def test_sessions_share_one_prepared_list_without_changing_it(kernels: bk.Kernels) -> None:
    """Two sessions over one `SenderList`, step by step in turn, each get the intersection; the list stays as built."""
    sender_keys = [b"s%d" % i for i in range(60)] + [b"both%d" % i for i in range(20)] * 2
    payloads = [b"payload %d" % i for i in range(len(sender_keys))]
    prepared = bulk.sender_list(sender_keys, payloads, kernels)
    copy = bulk.SenderList(bytes(bytearray(prepared.xs)), bytes(bytearray(prepared.plains)),
                           bytes(bytearray(prepared.plain_lengths)), prepared.groups)
    sides = [[b"r%d" % i for i in range(50)] + [b"both%d" % i for i in range(n)] for n in (5, 20)]
    receivers = [bulk.BulkReceiver(keys, kernels=kernels) for keys in sides]
    senders = [bulk.BulkSender(prepared, max_receiver_items=100, kernels=kernels) for _ in sides]
    setups = [s.setup(r.hello()) for r, s in zip(receivers, senders, strict=True)]
    for r, s, setup in zip(receivers, senders, setups, strict=True):
        for chunk in r.corrections(setup, CHUNK):
            s.absorb(chunk)
    results = [list(s.results(CHUNK)) for s in senders]
    for r, chunks, keys in zip(receivers, results, sides, strict=True):
        hits = sorted(hit for chunk in chunks for hit in r.open(chunk))
        r.finish()
        assert hits == expected_hits(keys, sender_keys, payloads)
    assert prepared == copy


@pytest.mark.parametrize("kernels", KERNELS)
def test_sealing_while_corrections_arrive_gives_the_same_results(kernels: bk.Kernels) -> None:
    """The server seals between setup and finish (beside `absorb`); the messages are those of sealing last."""
    receiver, sender = parties(kernels)
    corrections = list(receiver.corrections(sender.setup(receiver.hello()), CHUNK))
    sender.absorb(corrections[0])
    sender.seal()
    for c in corrections[1:]:
        sender.absorb(c)
    assert list(sender.results(CHUNK)) == through_corrections(kernels)[2]


def test_sealing_and_indexing_belong_between_setup_and_results() -> None:
    receiver, sender = parties()
    with pytest.raises(OutOfOrderError):
        sender.seal()
    with pytest.raises(OutOfOrderError):
        receiver.build_index()
    for c in receiver.corrections(sender.setup(receiver.hello()), CHUNK):
        sender.absorb(c)
    sender.seal()
    receiver.build_index()
    receiver.build_index()  # once built, a no-op
    with pytest.raises(OutOfOrderError):
        sender.seal()
    for result in sender.results(CHUNK):
        receiver.open(result)
    receiver.finish()
    with pytest.raises(OutOfOrderError):
        sender.seal()
