"""Every record's match keys for a bulk match, derived on all cores.

Deriving the keys is pure Python (`psi.profiles`) and was most of the client's time in a large bulk
match (about 9 µs a record under `exact/1`: 9 s at a million records), while the partner waits for
the hello. Forked workers each derive a contiguous slice of the records, in rounds, and send the
keys back packed: a forked worker shares the records with this process, where pickling a million records
would cost about as much as deriving their keys. A worker runs profile code only, which is what a
forked child of a process with gRPC threads may safely run (no gRPC, no native thread pool). With
one core, without fork (outside Linux), for a small list, or when a worker fails, the keys are
derived here; the result is the same either way.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from multiprocessing.connection import Connection

from psi.profiles import Profile
from psi.records import Record

MIN_RECORDS_PER_WORKER = 25_000  # fewer, and forking and sending the keys back cost more than they save
MAX_WORKERS = 8
ROUND_RECORDS = 131_072  # per process and round (see record_keys)


@dataclass(frozen=True)
class RecordKeys:
    """Every record's keys in one flat list and, for each key, where it came from, in flat arrays
    (a tuple per key would cost hundreds of megabytes at a million records)."""

    values: list[bytes]
    holders: array[int]  # the record's index
    positions: array[int]  # the key's place among the record's keys
    rules: array[int]  # the rule's place in the profile


def record_keys(profile: Profile, records: Sequence[Record], workers: int | None = None) -> RecordKeys:
    """The keys of `records` in record order (as deriving them one record after another gives),
    on `workers` processes (this one included; default: one per core for a large list)."""
    count = max(1, min(_default_workers(len(records)) if workers is None else workers, len(records)))
    if count == 1:
        return _derive(profile, records, 0, len(records))
    profile.key_values(records[0])  # loads the profile's tables once, before the fork, for every worker
    # In rounds: a page of records that a worker or this process writes to while both map it (reference
    # counts) is copied, so each round's records are held twice until its workers end, not the whole list.
    rounds = -(-len(records) // (count * ROUND_RECORDS))
    bounds = [len(records) * n // (rounds * count) for n in range(rounds * count + 1)]
    slices = list(pairwise(bounds))
    parts: list[RecordKeys] = []
    for first in range(0, len(slices), count):
        parts += _round(profile, records, slices[first:first + count])
    return RecordKeys([v for part in parts for v in part.values], _joined(p.holders for p in parts),
                      _joined(p.positions for p in parts), _joined(p.rules for p in parts))


def _round(profile: Profile, records: Sequence[Record], slices: list[tuple[int, int]]) -> list[RecordKeys]:
    """The keys of each slice: the first derived here, each other one by a forked worker."""
    (first, last), *others = slices
    context = multiprocessing.get_context("fork")
    started: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for start, end in others:
            receiving, sending = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(sending, profile, records, start, end), daemon=True)
            with warnings.catch_warnings():
                # Python 3.12+ warns on forking a process with threads (gRPC's); the worker touches
                # none of what those threads hold.
                warnings.simplefilter("ignore", DeprecationWarning)
                process.start()
            sending.close()
            started.append((process, receiving))
        parts = [_derive(profile, records, first, last)]
        for (_, receiving), (start, end) in zip(started, others, strict=True):
            parts.append(_received(receiving) or _derive(profile, records, start, end))
    finally:
        for worker, receiving in started:
            receiving.close()
            if worker.is_alive():
                worker.kill()
            worker.join()
    return parts


def _default_workers(records: int) -> int:
    if not sys.platform.startswith("linux"):
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS, records // MIN_RECORDS_PER_WORKER))


def _derive(profile: Profile, records: Sequence[Record], start: int, end: int) -> RecordKeys:
    values: list[bytes] = []
    holders, positions, rules = array("I"), array("I"), array("I")
    for index in range(start, end):
        for position, (rule, value) in enumerate(profile.key_values(records[index])):
            values.append(value)
            holders.append(index)
            positions.append(position)
            rules.append(rule)
    return RecordKeys(values, holders, positions, rules)


def _worker(sending: Connection, profile: Profile, records: Sequence[Record], start: int, end: int) -> None:
    """A forked worker: its slice's keys, packed. On any error it sends nothing and this process derives
    the slice itself (and reports the error as a one-process derivation would)."""
    try:
        keys = _derive(profile, records, start, end)
        sending.send_bytes(array("I", map(len, keys.values)))
        sending.send_bytes(b"".join(keys.values))
        for column in (keys.holders, keys.positions, keys.rules):
            sending.send_bytes(column)
    except BaseException:  # no traceback: it could quote a record
        os._exit(1)
    finally:
        sending.close()


def _received(receiving: Connection) -> RecordKeys | None:
    """A worker's keys, or None if it failed."""
    try:
        lengths = _array(receiving.recv_bytes())
        data = receiving.recv_bytes()
        holders, positions, rules = (_array(receiving.recv_bytes()) for _ in range(3))
    except (EOFError, OSError):
        return None
    values = [data[end - length:end] for end, length in zip(accumulate(lengths), lengths, strict=True)]
    return RecordKeys(values, holders, positions, rules)


def _array(data: bytes) -> array[int]:
    column = array("I")
    column.frombytes(data)
    return column


def _joined(columns: Iterable[array[int]]) -> array[int]:
    out = array("I")
    for column in columns:
        out.extend(column)
    return out
