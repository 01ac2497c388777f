"""Writes parts of one long computation to SQLite on a thread and connection of its own.

A key epoch's fill reads match keys, has the workers compute entries and writes them. On the
store's one connection those three took turns, and the writes (SQLite releases the GIL while
it works) were most of the wall time; here the writes overlap the next pages' reading and
computing. Each part is its own short transaction, in order, so an interruption leaves only
whole parts; after the first failure nothing more is written and the failure is raised to the
producer (at its next `put`, or at the end).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")
_QUEUED = 2  # parts computed but not yet written: bounds the memory held


class BackgroundWriter(Generic[T]):
    """`put` parts; a thread writes each with `write(db, part)` in a transaction on `db` (which it closes)."""

    def __init__(self, db: sqlite3.Connection, write: Callable[[sqlite3.Connection, Sequence[T]], None]) -> None:
        self._db = db
        self._write = write
        self._parts: queue.Queue[Sequence[T] | None] = queue.Queue(_QUEUED)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="store-writer")
        self._thread.start()

    def _run(self) -> None:
        try:
            while (part := self._parts.get()) is not None:
                if self._error is None:
                    try:
                        self._transaction(part)
                    except BaseException as exc:  # handed to the producer
                        self._error = exc
        finally:
            self._db.close()

    def _transaction(self, part: Sequence[T]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._write(self._db, part)
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def put(self, part: Sequence[T]) -> None:
        self.raise_failure()
        self._parts.put(part)

    def raise_failure(self) -> None:
        """Raise the write's failure, if one failed."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Wait until every part is written (or dropped after a failure)."""
        self._parts.put(None)
        self._thread.join()


@contextmanager
def background_writer(db: sqlite3.Connection, write: Callable[[sqlite3.Connection, Sequence[T]], None]
                      ) -> Iterator[BackgroundWriter[T]]:
    """A writer that has written everything put (or raised its failure) when the block ends."""
    writer = BackgroundWriter(db, write)
    try:
        yield writer
    finally:
        writer.close()
    writer.raise_failure()  # the block ended normally: a failure of the last parts is the caller's
