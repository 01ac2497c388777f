"""The list holder's side of one BulkMatch session: the order of its steps around `psi.bulk.BulkSender`.

    AWAIT_START --start--> CORRECTING --correction*--> CORRECTING --finish--> FINISHED --results--> DONE

The servicer (`server.service`) admits the session first (`server.admission`, with the
receiver's announced item count as the size), then this class checks the start (purpose,
suite, profile, epoch), starts a sender over the node's prepared list (`PreparedList`, kept by
`server.node.Node.bulk_list` for the current key epoch and list version),
takes the corrections strictly in order and within the announced byte count, and hands out
the results only after finish. The crypto runs on the server's executor when that is a pool of
threads (the core releases the GIL); a pool of processes cannot hold the sender's state, so then
it runs in the call's own thread. Errors are `psi.errors` classes; `server.status_codes` maps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any, TypeVar

from psi.bulk import SUITE, BulkSender, SenderList, bins, sender_list
from psi.bulk import announced_items as _announced_items
from psi.errors import (
    ConfigurationError,
    CryptoError,
    InputError,
    LimitExceededError,
    MalformedMessageError,
    OutOfOrderError,
    ParameterMismatchError,
)
from psi.executor import Executor, run_inline
from psi.messages import BulkAccepted, BulkChunk, BulkStart, Done, Parameters, Progress
from psi.server_session import check_request
from server.store import BulkInputs

R = TypeVar("R")
_ROW_BYTES = 64  # a correction row (psi.bulk_kernels.ROW_BYTES): the code width of 512 bits
CHUNK_OVERHEAD = 64  # bytes of a BulkCorrection or BulkResults message besides its data (docs/protocol.md)


@dataclass(frozen=True)
class PreparedList:
    """The node's list as bulk sessions start from it, for one key epoch and list version; only read."""

    key_epoch: int
    list_version: int
    entries: int  # stored entries, before records sharing a key are grouped
    sender: SenderList


def prepare_list(key_epoch: int, inputs: BulkInputs) -> PreparedList:
    """The epoch's entries (`Store.bulk_inputs`) prepared once for every session until the list or key changes."""
    return PreparedList(key_epoch, inputs.list_version, len(inputs.keys), sender_list(inputs.keys, inputs.payloads))


def suite() -> str:
    """The bulk suite this node offers (`Parameters.bulk_suite`)."""
    return SUITE


def announced_items(hello: bytes) -> int:
    """The receiver's item count its hello announces (the size admission checks); MalformedMessageError."""
    if not hello:
        raise MalformedMessageError("a bulk start must carry the receiver's hello")
    items = _announced_items(hello)
    if items < 1:
        raise InputError("a bulk query must announce at least 1 item")
    return items


def evaluations(items: int) -> int:
    """What a session of `items` announced items is sized and charged by: one OPRF evaluation per
    cuckoo bin, since a receiver that fills every bin can test that many items, not just `items`."""
    return bins(items)


def chunk_limit(max_message_bytes: int, margin: int) -> int:
    """The largest `data` of one correction or result chunk under the node's message limit."""
    return max_message_bytes - margin - CHUNK_OVERHEAD


def run_on(executor: Executor, fn: Callable[..., R], *args: Any, size: int) -> R:
    """`fn(*args)` on `executor` when it shares this process's memory (threads, inline), else here."""
    return start_on(executor, fn, *args, size=size).result()


def start_on(executor: Executor, fn: Callable[..., R], *args: Any, size: int) -> Future[R]:
    """`fn(*args)` started on `executor` when it shares this process's memory (threads, inline), else run here."""
    if getattr(executor, "threads", True):
        return executor.submit(fn, *args, size=size)
    return run_inline(fn, *args)


class _State(Enum):
    AWAIT_START = auto()
    CORRECTING = auto()
    FINISHED = auto()
    DONE = auto()


class BulkServing:
    """One bulk session of the list holder; every step checked before the core sees it."""

    def __init__(self, params: Parameters, session_id: str, max_items: int, max_chunk_bytes: int,
                 executor: Executor) -> None:
        self._params = params
        self.session_id = session_id
        self._max_items = max_items  # what admission allowed: min(agreement, node) query size
        self.max_chunk_bytes = max_chunk_bytes
        self._executor = executor
        self._state = _State.AWAIT_START
        self._sender: BulkSender | None = None
        self.items = 0  # the receiver's, announced
        self.correction_bytes = 0  # the rows' bytes, as the sender expects them
        self.absorbed = 0  # of those, absorbed so far
        self.received = 0  # correction bytes on the wire (chunk headers included)
        self.result_count = 0
        self.server_entries = 0
        self.results_sent = 0  # bytes
        self.list_version = 0
        self._next_index = 0
        self._chunks: Iterator[bytes] = iter(())
        self._sealing: Future[None] | None = None

    def __repr__(self) -> str:
        return f"BulkServing(id={self.session_id!r}, state={self._state.name}, received={self.received})"

    def check_start(self, msg: BulkStart) -> None:
        """The start's own checks, before any list data is read."""
        if self._state is not _State.AWAIT_START:
            raise OutOfOrderError("the session has already started")
        check_request(self._params, msg.purpose, msg.case_reference, msg.profile_id, msg.profile_hash,
                      msg.key_epoch)
        if msg.suite != SUITE:
            raise ParameterMismatchError(f"bulk suite differs: client '{msg.suite}', server '{SUITE}'")

    def accept(self, msg: BulkStart, prepared: PreparedList) -> BulkAccepted:
        """Start a sender over the prepared list and answer the hello (on the executor)."""
        self.check_start(msg)
        self.items = announced_items(msg.hello)
        if self.items > self._max_items:  # admission checked it; the sender is built for no more
            raise LimitExceededError(f"the hello announces {self.items} items; at most {self._max_items}")
        size = prepared.entries + self.items

        def build() -> tuple[BulkSender, bytes]:
            sender = BulkSender(prepared.sender, max_receiver_items=self._max_items)
            return sender, sender.setup(msg.hello)

        sender, setup = run_on(self._executor, build, size=size)
        if len(setup) > self.max_chunk_bytes:
            raise ConfigurationError(f"the bulk setup of {len(setup)} bytes does not fit the node's message "
                                     "limit; raise max_message_bytes")
        self._sender = sender
        # Sealing needs only the setup: it runs while the corrections arrive.
        self._sealing = start_on(self._executor, sender.seal, size=sender.result_count)
        self.correction_bytes = int(sender.correction_bytes)
        self.result_count = int(sender.result_count)
        self.list_version = prepared.list_version
        self.server_entries = prepared.entries
        self._state = _State.CORRECTING
        return BulkAccepted(self.session_id, self._params.key_epoch, setup, self.correction_bytes,
                            self.result_count, prepared.list_version, self.max_chunk_bytes)

    def correction(self, msg: BulkChunk) -> Progress:
        """Absorb the next correction chunk: index in order, size within the chunk limit; the core checks the rest.

        A chunk is a header shorter than a row and whole rows (docs/protocol.md, "Bulk mode"), so its rows'
        bytes are its length rounded down to whole rows.
        """
        if self._state is not _State.CORRECTING:
            raise OutOfOrderError("a correction must follow the session start and precede finish")
        if msg.index != self._next_index:
            raise OutOfOrderError(f"expected correction {self._next_index}, got correction {msg.index}")
        if not msg.data:
            raise MalformedMessageError(f"correction {msg.index} is empty")
        if len(msg.data) > self.max_chunk_bytes:
            raise LimitExceededError(f"correction {msg.index} has {len(msg.data)} bytes; "
                                     f"the limit is {self.max_chunk_bytes}")
        rows = len(msg.data) - len(msg.data) % _ROW_BYTES
        if self.absorbed + rows > self.correction_bytes:
            raise LimitExceededError(f"correction {msg.index} goes past the {self.correction_bytes} "
                                     "correction bytes expected")
        run_on(self._executor, self._started().absorb, msg.data, size=len(msg.data))
        self._next_index += 1
        self.received += len(msg.data)
        self.absorbed += rows
        return Progress(self.absorbed, self.correction_bytes)

    def _started(self) -> BulkSender:
        if self._sender is None:
            raise OutOfOrderError("the session has not started")
        return self._sender

    def finish(self) -> None:
        if self._state is not _State.CORRECTING:
            raise OutOfOrderError("finish must follow the session start and the corrections")
        if self.absorbed != self.correction_bytes:
            raise OutOfOrderError(f"finish after {self.absorbed} of {self.correction_bytes} correction bytes")
        if self._sealing is not None:
            self._sealing.result()
        try:  # the sender's results are computed here; they are sent only once the session is audited
            self._chunks = run_on(self._executor, self._started().results, self.max_chunk_bytes,
                                  size=self.result_count)
        except InputError as exc:  # the core cannot cut its results to this limit: ours, not the partner's
            raise CryptoError(f"bulk results do not fit the chunk limit: {exc}") from None
        self._state = _State.FINISHED

    def results(self) -> Iterator[BulkChunk | Done]:
        """The sender's results in chunks under the message limit, then Done; only after finish."""
        if self._state is not _State.FINISHED:
            raise OutOfOrderError("the results follow finish")
        self._state = _State.DONE
        chunks, self._chunks = self._chunks, iter(())
        index = 0
        while (data := run_on(self._executor, next, chunks, None, size=self.result_count)) is not None:
            if len(data) > self.max_chunk_bytes:  # the core's promise, kept here as the wire's
                raise CryptoError(f"the bulk core made a result chunk of {len(data)} bytes, over the chunk limit")
            self.results_sent += len(data)
            yield BulkChunk(index, data)
            index += 1
        self._sender = None
        yield Done(self.items)
