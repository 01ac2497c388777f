"""The list holder's side of one evaluation session, as a state machine.

    AWAIT_START --start--> ACTIVE --batch*--> ACTIVE --finish--> DONE

Every message is checked before any group operation: the order of steps,
the agreed epoch and profile, batch sizes, and each element's encoding
(canonical, non-identity). Who may ask for which list, mode and query size
is the node's admission (`server.admission`), decided before a session exists.
The session runs no group operation itself: `batch` returns an
`EvaluationJob` that the adapter's executor runs, and `evaluated` takes
its result back. In cardinality mode the evaluations are
held back and returned with the record groups shuffled, so the client can
count hits but not place them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import Enum, auto

from psi import backend, group
from psi.errors import (
    ElementError,
    InputError,
    LimitExceededError,
    MalformedMessageError,
    OutOfOrderError,
    ParameterMismatchError,
    StaleStateError,
)
from psi.executor import INLINE, Executor
from psi.messages import (
    BlindedBatch,
    Done,
    EvaluatedBatch,
    Finish,
    Mode,
    Parameters,
    Progress,
    SessionAccepted,
    SessionStart,
)

_E = group.ELEMENT_BYTES
_SLICE = 1024  # elements per job slice: enough to outweigh a worker round trip, small enough to share



def check_request(params: Parameters, purpose: str, case_reference: str, profile_id: str, profile_hash: bytes,
                  key_epoch: int) -> None:
    """What every query's start must state (InputError) and agree on with the server's parameters
    (ParameterMismatchError for the profile, StaleStateError for the key epoch)."""
    if not purpose.strip() or not case_reference.strip():
        raise InputError("a request needs a purpose (legal basis) and a case reference")
    if profile_id != params.profile_id or profile_hash != params.profile_hash:
        raise ParameterMismatchError(
            f"match profile differs: client '{profile_id}', server '{params.profile_id}' "
            "(same id and definition hash required)"
        )
    if key_epoch != params.key_epoch:
        raise StaleStateError(f"key epoch {key_epoch} is not the current epoch {params.key_epoch}; "
                              "fetch the parameters again")

class _State(Enum):
    AWAIT_START = auto()
    ACTIVE = auto()
    DONE = auto()


def evaluate_slice(key: bytes, packed: bytes, batch_index: int, first: int) -> bytes:
    """Validate and evaluate packed blinded elements; errors name the batch and element index."""
    try:
        return backend.active().blind_evaluate(key, packed)
    except ElementError as exc:
        raise MalformedMessageError(f"batch {batch_index}, element {first + exc.index}: {exc.reason}") from None


@dataclass(frozen=True)
class EvaluationJob:
    """One validated batch, cut into slices that the adapter's executor evaluates (`run_evaluation`)."""

    index: int
    count: int
    slices: tuple[tuple[int, bytes], ...] = field(repr=False)  # (first element, packed elements)
    key: bytes = field(repr=False)


def run_evaluation(job: EvaluationJob, executor: Executor = INLINE) -> bytes:
    """The job's evaluations, the slices run side by side on `executor`."""
    parts = [executor.submit(evaluate_slice, job.key, packed, job.index, first, size=job.count)
             for first, packed in job.slices]
    return b"".join(part.result() for part in parts)


class ServerSession:
    """Evaluates one client's blinded elements under the server key."""

    def __init__(self, key: bytes, params: Parameters, session_id: str) -> None:
        self._key = key
        self._params = params
        self.parameters = params
        self.session_id = session_id
        self._state = _State.AWAIT_START
        self.start_message: SessionStart | None = None
        self._next_index = 0
        self.received = 0
        self._held: list[bytes] = []  # cardinality mode: evaluations kept until finish
        self._evaluating = 0  # elements of the batch whose job is out

    def __repr__(self) -> str:  # never show the key
        return f"ServerSession(id={self.session_id!r}, state={self._state.name}, received={self.received})"

    @property
    def key_epoch(self) -> int:
        return self._params.key_epoch

    @property
    def mode(self) -> Mode | None:
        return self.start_message.mode if self.start_message else None

    def start(self, msg: SessionStart) -> SessionAccepted:
        if self._state is not _State.AWAIT_START:
            raise OutOfOrderError("the session has already started")
        p = self._params
        check_request(p, msg.purpose, msg.case_reference, msg.profile_id, msg.profile_hash, msg.key_epoch)
        if msg.total_elements < 1:  # the upper bound is the partner's agreement: server.admission
            raise InputError("a query must announce at least 1 element")
        group_size = msg.group_size if msg.mode is Mode.CARDINALITY else 1
        if group_size < 1 or group_size > p.limits.max_batch_size or msg.total_elements % group_size:
            raise InputError(
                f"group size {msg.group_size} must divide the total of {msg.total_elements} elements "
                f"and be at most {p.limits.max_batch_size}"
            )
        self.start_message = msg
        self._state = _State.ACTIVE
        return SessionAccepted(self.session_id, p.key_epoch)

    def batch(self, msg: BlindedBatch) -> EvaluationJob:
        """Check one batch and return the job that evaluates it; nothing is evaluated here."""
        if self._state is not _State.ACTIVE or self.start_message is None:
            raise OutOfOrderError("a batch must follow the session start and precede finish")
        if self._evaluating:
            raise OutOfOrderError(f"batch {msg.index} arrived before batch {self._next_index - 1} was evaluated")
        if msg.index != self._next_index:
            raise OutOfOrderError(f"expected batch {self._next_index}, got batch {msg.index}")
        if not msg.elements or len(msg.elements) % _E:
            raise MalformedMessageError(
                f"batch {msg.index}: {len(msg.elements)} bytes is not a positive multiple of {_E}"
            )
        count = len(msg.elements) // _E
        limits = self._params.limits
        if count > limits.max_batch_size:
            raise LimitExceededError(
                f"batch {msg.index} has {count} elements; the limit is {limits.max_batch_size}")
        if self.received + count > self.start_message.total_elements:
            raise LimitExceededError(
                f"batch {msg.index} goes past the announced total of {self.start_message.total_elements}"
            )
        group_size = self.start_message.group_size if self.mode is Mode.CARDINALITY else 1
        if count % group_size:
            raise InputError(f"batch {msg.index} must hold whole groups of {group_size} elements")
        self._next_index += 1
        self._evaluating = count
        slices = tuple((first, msg.elements[first * _E:(first + _SLICE) * _E]) for first in range(0, count, _SLICE))
        return EvaluationJob(msg.index, count, slices, self._key)

    def evaluated(self, job: EvaluationJob, evaluated: bytes) -> EvaluatedBatch | Progress:
        """Take the result of the job `batch` returned last: the reply (held back in cardinality mode)."""
        if self._evaluating != job.count or job.index != self._next_index - 1 or len(evaluated) != job.count * _E:
            raise OutOfOrderError(f"evaluation of batch {job.index} is not the one outstanding")
        assert self.start_message is not None
        self._evaluating = 0
        self.received += job.count
        if self.mode is Mode.CARDINALITY:
            self._held.append(evaluated)
            return Progress(self.received, self.start_message.total_elements)
        return EvaluatedBatch(job.index, evaluated)

    def finish(self, msg: Finish) -> list[EvaluatedBatch | Done]:
        del msg
        if self._state is not _State.ACTIVE or self.start_message is None or self._evaluating:
            raise OutOfOrderError("finish must follow the session start and the last evaluation")
        total = self.start_message.total_elements
        if self.received != total:
            raise OutOfOrderError(f"finish after {self.received} of {total} announced elements")
        self._state = _State.DONE
        out: list[EvaluatedBatch | Done] = []
        if self.mode is Mode.CARDINALITY:
            out.extend(self._shuffled_batches())
        out.append(Done(total))
        return out

    def _shuffled_batches(self) -> list[EvaluatedBatch]:
        assert self.start_message is not None
        size = self.start_message.group_size * _E
        blob = b"".join(self._held)
        self._held = []
        rng = secrets.SystemRandom()
        groups = []
        for i in range(0, len(blob), size):
            members = [blob[j:j + _E] for j in range(i, i + size, _E)]
            rng.shuffle(members)
            groups.append(b"".join(members))
        rng.shuffle(groups)
        per_batch = max(1, self._params.limits.max_batch_size // self.start_message.group_size)
        return [
            EvaluatedBatch(n, b"".join(groups[i:i + per_batch]))
            for n, i in enumerate(range(0, len(groups), per_batch))
        ]

    @property
    def done(self) -> bool:
        return self._state is _State.DONE
