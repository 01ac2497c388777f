"""The querier's side: blind its match keys, unblind the evaluations, look up tags.

`IntersectionQuery` follows RFC 9497 exactly (a fresh blind per element) and
learns which records hit and the partner's sealed label for each.
`CardinalityQuery` blinds every element with one scalar so that the server can
shuffle the record groups; the client then learns only how many records hit.
Blinds and PRF outputs stay in these objects and are never serialised.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import rbcl

from psi import followup, group, oprf, parallel, tags
from psi.errors import MalformedMessageError, OutOfOrderError, ParameterMismatchError
from psi.messages import PROTOCOL_VERSION, BlindedBatch, EvaluatedBatch, Mode, Parameters, SessionStart
from psi.profiles import Profile, Strength
from psi.records import Record
from psi.tagset import TagIndex

_E = group.ELEMENT_BYTES
_STRENGTH_ORDER = {Strength.STRONG: 0, Strength.MEDIUM: 1, Strength.WEAK: 2}


@dataclass(frozen=True)
class Hit:
    """One local record that matched one partner record."""

    record_id: str
    reference: str
    category: str
    rules: tuple[str, ...]
    strength: Strength
    followup_key: bytes = field(default=b"", repr=False)  # proves the hit in a follow-up request


@dataclass(frozen=True)
class MatchResult:
    mode: Mode
    records: int  # local records compared
    keys: int  # match keys (elements) sent
    hit_records: int  # local records with at least one hit
    hits: tuple[Hit, ...] = ()  # empty in cardinality mode


def check_parameters(params: Parameters, profile: Profile, mode: Mode) -> None:
    """Refuse a server whose suite, protocol version, profile or modes differ from ours."""
    if params.protocol_version != PROTOCOL_VERSION:
        raise ParameterMismatchError(
            f"server speaks protocol version {params.protocol_version}, this client {PROTOCOL_VERSION}"
        )
    if params.suite != oprf.SUITE_ID:
        raise ParameterMismatchError(f"server suite '{params.suite}', this client '{oprf.SUITE_ID}'")
    if params.profile_id != profile.profile_id or params.profile_hash != profile.definition_hash:
        raise ParameterMismatchError(
            f"match profile differs: server '{params.profile_id}', client '{profile.profile_id}' "
            "(same id and definition hash required)"
        )
    if mode not in params.modes:
        raise ParameterMismatchError(f"server does not offer mode '{mode.value}'")


class _Query:
    mode: Mode

    def __init__(self, params: Parameters, profile: Profile, records: Sequence[Record],
                 purpose: str, case_reference: str, operator: str, request_id: str) -> None:
        check_parameters(params, profile, self.mode)
        self.params = params
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


def blind_values(values: list[bytes]) -> tuple[list[bytes], bytes]:
    """Blind one batch: (its blinds, its packed blinded elements). Runs in a worker."""
    blinds, blinded = oprf.blind_many(values)
    return blinds, b"".join(blinded)


def finalize_values(values: list[bytes], blinds: list[bytes], packed: bytes) -> list[tuple[bytes, bytes]]:
    """Unblind and finalize one batch (RFC 9497 Finalize): (tag material, label key) each. Runs in a worker."""
    inverses = group.batch_invert_scalars(blinds)
    return [tags.split_output(oprf.finalize_with_inverse(value, inverse, packed[j * _E:(j + 1) * _E]))
            for j, (value, inverse) in enumerate(zip(values, inverses, strict=True))]


class IntersectionQuery(_Query):
    """Which of my records are on the partner's list, with its label for each hit."""

    mode = Mode.INTERSECTION

    def __init__(self, params: Parameters, profile: Profile, records: Sequence[Record], *,
                 purpose: str, case_reference: str, operator: str = "", request_id: str = "") -> None:
        super().__init__(params, profile, records, purpose, case_reference, operator, request_id)
        self._items = [(i, k) for i, r in enumerate(self.records) for k in profile.match_keys(r)]
        # At least ~8 batches, so blinding, the partner's evaluation and finalizing overlap.
        self._batch_size = min(params.limits.max_batch_size, max(256, -(-len(self._items) // 8)))
        self._pending: dict[int, list[bytes]] = {}
        self._finalizing: list[tuple[int, Future[list[tuple[bytes, bytes]]]]] = []
        self._inline = parallel.inline_for(len(self._items))

    def __repr__(self) -> str:
        return f"IntersectionQuery(records={len(self.records)}, keys={len(self._items)})"

    @property
    def total_elements(self) -> int:
        return len(self._items)

    def _values(self, index: int) -> list[bytes]:
        start = index * self._batch_size
        return [k.value for _, k in self._items[start:start + self._batch_size]]

    def batches(self) -> Iterator[BlindedBatch]:
        """Blind on all cores a few batches ahead, so sending overlaps blinding."""
        count = -(-len(self._items) // self._batch_size)
        ahead: deque[Future[tuple[list[bytes], bytes]]] = deque()
        submitted = 0
        for index in range(count):
            while submitted < count and len(ahead) < 2 * parallel.worker_count():
                ahead.append(parallel.submit(blind_values, self._values(submitted), inline=self._inline))
                submitted += 1
            blinds, packed = ahead.popleft().result()
            self._pending[index] = blinds
            yield BlindedBatch(index, packed)

    def receive(self, msg: EvaluatedBatch) -> None:
        blinds = self._pending.pop(msg.index, None)
        if blinds is None:
            raise OutOfOrderError(f"evaluation for batch {msg.index}, which is not outstanding")
        if len(msg.elements) != len(blinds) * _E:
            raise MalformedMessageError(
                f"batch {msg.index}: expected {len(blinds)} evaluated elements, got {len(msg.elements)} bytes"
            )
        self._finalizing.append((msg.index, parallel.submit(
            finalize_values, self._values(msg.index), blinds, msg.elements, inline=self._inline)))

    def result(self, index: TagIndex) -> MatchResult:
        """Look every finalized output up among the partner's tags and open the labels."""
        if self._pending or len(self._finalizing) != -(-len(self._items) // self._batch_size):
            raise OutOfOrderError("not every batch has been evaluated")
        outputs = [o for _, future in sorted(self._finalizing, key=lambda f: f[0]) for o in future.result()]
        found: dict[tuple[str, str, str], set[str]] = {}
        keys: dict[tuple[str, str, str], bytes] = {}
        for (record_index, match_key), (_, label_key), positions in zip(
            self._items, outputs, index.find([m for m, _ in outputs]), strict=True
        ):
            for position in positions:
                plain = tags.open_label(label_key, index.label(position))
                if plain is None:
                    continue  # a truncated-tag collision, not a hit
                reference, category = tags.decode_label(plain)
                hit_key = (self.records[record_index].record_id, reference, category)
                found.setdefault(hit_key, set()).add(match_key.rule_id)
                keys.setdefault(hit_key, followup.followup_key(label_key))
        hits = []
        for (record_id, reference, category), rule_ids in found.items():
            rules = tuple(r.rule_id for r in self.profile.rules if r.rule_id in rule_ids)
            strength = min((self.profile.rule(r).strength for r in rules), key=_STRENGTH_ORDER.__getitem__)
            hits.append(Hit(record_id, reference, category, rules, strength,
                            keys[(record_id, reference, category)]))
        hits.sort(key=lambda h: (h.record_id, h.reference))
        return MatchResult(Mode.INTERSECTION, len(self.records), len(self._items),
                           len({h.record_id for h in hits}), tuple(hits))


class CardinalityQuery(_Query):
    """How many of my records are on the partner's list, and nothing about which."""

    mode = Mode.CARDINALITY

    def __init__(self, params: Parameters, profile: Profile, records: Sequence[Record], *,
                 purpose: str, case_reference: str, operator: str = "", request_id: str = "") -> None:
        super().__init__(params, profile, records, purpose, case_reference, operator, request_id)
        keyed = [profile.match_keys(r) for r in self.records]
        self._group_size = max([1, *map(len, keyed)])
        if self._group_size > params.limits.max_batch_size:
            raise ParameterMismatchError("a record yields more keys than one batch may hold")
        self._groups = [[k.value for k in keys] for keys in keyed]
        self._blind = group.random_scalar()
        self._received: list[bytes] = []
        self._next_batch = 0

    def __repr__(self) -> str:
        return f"CardinalityQuery(records={len(self.records)}, group_size={self._group_size})"

    @property
    def total_elements(self) -> int:
        return len(self._groups) * self._group_size

    @property
    def group_size(self) -> int:
        return self._group_size

    def _blinded_group(self, values: list[bytes]) -> bytes:
        # Padding with random elements hides how many keys each record has.
        blinded = [oprf.blind(v, self._blind)[1] for v in values]
        blinded += [rbcl.crypto_core_ristretto255_random() for _ in range(self._group_size - len(values))]
        return b"".join(blinded)

    def batches(self) -> Iterator[BlindedBatch]:
        per_batch = max(1, self.params.limits.max_batch_size // self._group_size)
        for index, start in enumerate(range(0, len(self._groups), per_batch)):
            chunk = self._groups[start:start + per_batch]
            yield BlindedBatch(index, b"".join(self._blinded_group(g) for g in chunk))

    def receive(self, msg: EvaluatedBatch) -> None:
        if msg.index != self._next_batch:
            raise OutOfOrderError(f"expected shuffled batch {self._next_batch}, got {msg.index}")
        if not msg.elements or len(msg.elements) % (self._group_size * _E):
            raise MalformedMessageError(f"batch {msg.index} does not hold whole groups")
        self._next_batch += 1
        self._received.append(msg.elements)

    def result(self, index: TagIndex) -> MatchResult:
        blob = b"".join(self._received)
        if len(blob) != self.total_elements * _E:
            raise OutOfOrderError("not every group has been evaluated")
        inverse = group.invert_scalar(self._blind)
        materials = []
        for i in range(0, len(blob), _E):
            materials.append(tags.cardinality_material(group.scalar_mult_peer(inverse, blob[i:i + _E])))
        found = index.find(materials)
        size = self._group_size
        hit_groups = sum(
            1 for g in range(0, len(found), size) if any(found[g + j] for j in range(size))
        )
        return MatchResult(Mode.CARDINALITY, len(self.records), self.total_elements, hit_groups)
