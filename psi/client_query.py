"""The querier's side: blind its match keys, unblind the evaluations, look up tags.

`IntersectionQuery` follows RFC 9497 exactly (a fresh blind per element) and
learns which records hit and the partner's sealed label for each.
`CardinalityQuery` blinds every element with one scalar so that the server can
shuffle the record groups; the client then learns only how many records hit.
Blinds and PRF outputs stay in these objects and are never serialised.

A query starts no threads and submits no job until its adapter drives it
(`batches()`, `receive()`): its group operations run on the `Executor` it was
given, inline by default. One thread makes every call on a query.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from typing import Any

from psi import backend, followup, group, oprf, tags
from psi.errors import MalformedMessageError, OutOfOrderError, ParameterMismatchError
from psi.executor import INLINE, Executor, map_stream
from psi.messages import PROTOCOL_VERSION, BlindedBatch, EvaluatedBatch, Mode, Parameters, SessionStart
from psi.profiles import Profile, Strength
from psi.records import Record
from psi.tagset import TagIndex

_E = group.ELEMENT_BYTES
_STRENGTH_ORDER = {Strength.STRONG: 0, Strength.MEDIUM: 1, Strength.WEAK: 2}


@dataclass(frozen=True, slots=True)  # slots: a bulk match may hold a million
class Hit:
    """One local record that matched one partner record."""

    record_id: str
    reference: str
    category: str
    rules: tuple[str, ...]
    strength: Strength
    followup_key: bytes = field(default=b"", repr=False)  # proves the hit in a follow-up request

    @classmethod
    def from_columns(cls, *columns: Sequence[Any]) -> tuple[Hit, ...]:
        """One hit per row of `columns` (one column per field, in field order), as `map(Hit, *columns)` gives,
        at about a third of its cost for a bulk match's hundreds of thousands: the frozen class's `__init__`
        makes a Python call per field and hit, where each slot's descriptor fills a whole column in C."""
        if len({len(column) for column in columns}) > 1 or len(columns) != len(fields(cls)):
            raise ValueError("one column per field, all of one length")
        hits = [object.__new__(cls) for _ in range(len(columns[0]) if columns else 0)]
        for name, column in zip((f.name for f in fields(cls)), columns, strict=True):
            deque(map(getattr(cls, name).__set__, hits, column), maxlen=0)
        return tuple(hits)


@dataclass(frozen=True)
class MatchResult:
    mode: Mode
    records: int  # local records compared
    keys: int  # match keys (elements) sent
    hit_records: int  # local records with at least one hit
    hits: tuple[Hit, ...] = ()  # empty in cardinality mode


def check_version_and_profile(params: Parameters, profile: Profile) -> None:
    """Refuse a server whose protocol version or match profile differ from ours (every mode's check)."""
    if params.protocol_version != PROTOCOL_VERSION:
        raise ParameterMismatchError(
            f"server speaks protocol version {params.protocol_version}, this client {PROTOCOL_VERSION}"
        )
    if params.profile_id != profile.profile_id or params.profile_hash != profile.definition_hash:
        raise ParameterMismatchError(
            f"match profile differs: server '{params.profile_id}', client '{profile.profile_id}' "
            "(same id and definition hash required)"
        )


def check_parameters(params: Parameters, profile: Profile, mode: Mode) -> None:
    """Refuse a server whose suite, protocol version, profile or modes differ from ours."""
    check_version_and_profile(params, profile)
    if params.suite != oprf.SUITE_ID:
        raise ParameterMismatchError(f"server suite '{params.suite}', this client '{oprf.SUITE_ID}'")
    if mode not in params.modes:
        raise ParameterMismatchError(f"server does not offer mode '{mode.value}'")


class _Query:
    mode: Mode

    def __init__(self, params: Parameters, profile: Profile, records: Sequence[Record],
                 purpose: str, case_reference: str, operator: str, request_id: str, executor: Executor) -> None:
        check_parameters(params, profile, self.mode)
        self.params = params
        self._executor = executor
        self.profile = profile
        self.records = list(records)
        self._purpose = purpose
        self._case_reference = case_reference
        self._operator = operator
        self.request_id = request_id or uuid.uuid4().hex

    @property
    def total_elements(self) -> int:
        raise NotImplementedError

    @property
    def group_size(self) -> int:
        return 1

    def start_message(self) -> SessionStart:
        p = self.params
        return SessionStart(p.list_id, self.mode, p.key_epoch, self.profile.profile_id,
                            self.profile.definition_hash, self.total_elements, self.group_size,
                            self._purpose, self._case_reference, self._operator, self.request_id)


def blind_values(values: list[bytes]) -> tuple[bytes, bytes]:
    """Blind one batch: (its packed blinds, its packed blinded elements). Runs in a worker."""
    return backend.active().blind(values)


def finalize_values(values: list[bytes], blinds: bytes, packed: bytes) -> list[tuple[bytes, bytes]]:
    """Unblind and finalize one batch (RFC 9497 Finalize): (tag material, label key) each. Runs in a worker."""
    outputs = backend.active().finalize(values, blinds, packed)
    h = oprf.OUTPUT_BYTES
    return [tags.split_output(outputs[i:i + h]) for i in range(0, len(outputs), h)]


def blind_groups(groups: list[list[bytes]], blind: bytes, size: int) -> list[bytes]:
    """Blind record groups with one scalar, each padded to `size` elements. Runs in a worker."""
    active = backend.active()
    values = [v for members in groups for v in members]
    _, blinded = active.blind(values, blind * len(values))
    # Padding with random elements hides how many keys each record has.
    padding = active.random_elements(size * len(groups) - len(values))
    out, start, pad = [], 0, 0
    for members in groups:
        missing = size - len(members)
        out.append(blinded[start * _E:(start + len(members)) * _E] + padding[pad * _E:(pad + missing) * _E])
        start, pad = start + len(members), pad + missing
    return out


def unblind_materials(inverse: bytes, packed: bytes) -> list[bytes]:
    """Cardinality tag material of each evaluated element, unblinded with 1/blind. Runs in a worker."""
    materials = backend.active().cardinality_materials(inverse, packed, tags.CARDINALITY_DOMAIN)
    m = backend.MATERIAL_BYTES
    return [materials[i:i + m] for i in range(0, len(materials), m)]


class IntersectionQuery(_Query):
    """Which of my records are on the partner's list, with its label for each hit."""

    mode = Mode.INTERSECTION

    def __init__(self, params: Parameters, profile: Profile, records: Sequence[Record], *,
                 purpose: str, case_reference: str, operator: str = "", request_id: str = "",
                 executor: Executor = INLINE) -> None:
        super().__init__(params, profile, records, purpose, case_reference, operator, request_id, executor)
        # At least ~8 batches, so blinding, the partner's evaluation and finalizing overlap.
        self._batch_size = min(params.limits.max_batch_size, max(256, -(-len(self.records) // 8)))
        self._blinding: deque[Future[tuple[bytes, bytes]]] = deque()
        self._pending: dict[int, bytes] = {}  # packed blinds of each batch sent
        self._finalizing: dict[int, Future[list[tuple[bytes, bytes]]]] = {}
        self._looked_up = 0  # batches looked up so far, in order
        self._found: dict[tuple[str, str, str], tuple[set[str], bytes]] = {}
        self._items = [(i, k) for i, record in enumerate(self.records) for k in profile.match_keys(record)]

    def __repr__(self) -> str:
        return f"IntersectionQuery(records={len(self.records)}, keys={len(self._items)})"

    @property
    def total_elements(self) -> int:
        return len(self._items)

    @property
    def _batch_count(self) -> int:
        return -(-len(self._items) // self._batch_size)

    def _values(self, index: int) -> list[bytes]:
        start = index * self._batch_size
        return [k.value for _, k in self._items[start:start + self._batch_size]]

    def _blind_ahead(self, sent: int) -> None:
        """Start blinding the next batches, at most a few ahead of the `sent` ones (bounded memory)."""
        submitted = sent + len(self._blinding)
        while submitted < self._batch_count and len(self._blinding) < 2 * self._executor.workers:
            # Sized by the whole query: the executor keeps a small query's jobs in this thread.
            self._blinding.append(self._executor.submit(blind_values, self._values(submitted),
                                                        size=self.total_elements))
            submitted += 1

    def batches(self) -> Iterator[BlindedBatch]:
        """Blind on the executor a few batches ahead, so sending overlaps blinding."""
        for index in range(self._batch_count):
            self._blind_ahead(index)
            blinds, packed = self._blinding.popleft().result()
            self._pending[index] = blinds
            yield BlindedBatch(index, packed)

    def receive(self, msg: EvaluatedBatch) -> None:
        blinds = self._pending.pop(msg.index, None)
        if blinds is None:
            raise OutOfOrderError(f"evaluation for batch {msg.index}, which is not outstanding")
        if len(msg.elements) != len(blinds):  # a blind and an element are both 32 bytes
            raise MalformedMessageError(
                f"batch {msg.index}: expected {len(blinds) // _E} evaluated elements, got {len(msg.elements)} bytes"
            )
        self._finalizing[msg.index] = self._executor.submit(
            finalize_values, self._values(msg.index), blinds, msg.elements, size=self.total_elements)

    def look_up(self, index: TagIndex, *, wait: bool = False) -> None:
        """Look up the finalized batches, in order, among the partner's tags and open the labels.

        Without `wait`, only batches already finalized: called while the exchange runs, this
        keeps the lookups off its end. Every call must pass the same index.
        """
        while (future := self._finalizing.get(self._looked_up)) is not None and (wait or future.done()):
            start = self._looked_up * self._batch_size
            outputs = future.result()
            items = self._items[start:start + len(outputs)]
            for (record_index, match_key), (_, label_key), positions in zip(
                items, outputs, index.find([m for m, _ in outputs]), strict=True
            ):
                for position in positions:
                    plain = tags.open_label(label_key, index.label(position))
                    if plain is None:
                        continue  # a truncated-tag collision, not a hit
                    reference, category = tags.decode_label(plain)
                    hit_key = (self.records[record_index].record_id, reference, category)
                    rules, _ = self._found.setdefault(hit_key, (set(), followup.followup_key(label_key)))
                    rules.add(match_key.rule_id)
            del self._finalizing[self._looked_up]
            self._looked_up += 1

    def result(self, index: TagIndex) -> MatchResult:
        """Every hit, once every batch has been evaluated (lookups not yet made are made here)."""
        if self._pending or self._looked_up + len(self._finalizing) != self._batch_count:
            raise OutOfOrderError("not every batch has been evaluated")
        self.look_up(index, wait=True)
        hits = []
        for (record_id, reference, category), (rule_ids, followup_key) in self._found.items():
            rules = tuple(r.rule_id for r in self.profile.rules if r.rule_id in rule_ids)
            strength = min((self.profile.rule(r).strength for r in rules), key=_STRENGTH_ORDER.__getitem__)
            hits.append(Hit(record_id, reference, category, rules, strength, followup_key))
        hits.sort(key=lambda h: (h.record_id, h.reference))
        return MatchResult(Mode.INTERSECTION, len(self.records), len(self._items),
                           len({h.record_id for h in hits}), tuple(hits))


class CardinalityQuery(_Query):
    """How many of my records are on the partner's list, and nothing about which."""

    mode = Mode.CARDINALITY

    def __init__(self, params: Parameters, profile: Profile, records: Sequence[Record], *,
                 purpose: str, case_reference: str, operator: str = "", request_id: str = "",
                 executor: Executor = INLINE) -> None:
        super().__init__(params, profile, records, purpose, case_reference, operator, request_id, executor)
        keyed = [profile.match_keys(r) for r in self.records]
        self._group_size = max([1, *map(len, keyed)])
        if self._group_size > params.limits.max_batch_size:
            raise ParameterMismatchError("a record yields more keys than one batch may hold")
        self._groups = [[k.value for k in keys] for keys in keyed]
        self._blind = group.random_scalar()
        self._inverse = group.invert_scalar(self._blind)
        self._unblinding: list[Future[list[bytes]]] = []
        self._received = 0  # evaluated elements
        self._next_batch = 0

    def __repr__(self) -> str:
        return f"CardinalityQuery(records={len(self.records)}, group_size={self._group_size})"

    @property
    def total_elements(self) -> int:
        return len(self._groups) * self._group_size

    @property
    def group_size(self) -> int:
        return self._group_size

    def batches(self) -> Iterator[BlindedBatch]:
        per_batch = max(1, self.params.limits.max_batch_size // self._group_size)
        chunks = (self._groups[start:start + per_batch] for start in range(0, len(self._groups), per_batch))
        running = map_stream(self._executor, blind_groups, chunks, self._blind, self._group_size,
                             size=self.total_elements)
        for index, packed in enumerate(running):
            yield BlindedBatch(index, b"".join(packed))

    def receive(self, msg: EvaluatedBatch) -> None:
        if msg.index != self._next_batch:
            raise OutOfOrderError(f"expected shuffled batch {self._next_batch}, got {msg.index}")
        if not msg.elements or len(msg.elements) % (self._group_size * _E):
            raise MalformedMessageError(f"batch {msg.index} does not hold whole groups")
        count = len(msg.elements) // _E
        if self._received + count > self.total_elements:
            raise MalformedMessageError(f"batch {msg.index} goes past the {self.total_elements} elements sent")
        self._next_batch += 1
        self._received += count
        self._unblinding.append(self._executor.submit(unblind_materials, self._inverse, msg.elements, size=count))

    def result(self, index: TagIndex) -> MatchResult:
        if self._received != self.total_elements:
            raise OutOfOrderError("not every group has been evaluated")
        found = index.find([m for future in self._unblinding for m in future.result()])
        size = self._group_size
        hit_groups = sum(
            1 for g in range(0, len(found), size) if any(found[g + j] for j in range(size))
        )
        return MatchResult(Mode.CARDINALITY, len(self.records), self.total_elements, hit_groups)
