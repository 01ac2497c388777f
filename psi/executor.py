"""How the core's batch jobs are run: the interface the adapters inject, and the inline executor.

The state machines in `psi/` never start threads or processes: they hand pure
functions and their arguments to an `Executor` that the server or the client
chose (a process pool today, native threads once the native core lands), and
take the results back as futures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

R = TypeVar("R")


class Executor(Protocol):
    """Runs batch jobs; `size` (group operations) lets it keep small jobs in the calling thread."""

    @property
    def workers(self) -> int: ...

    def submit(self, fn: Callable[..., R], /, *args: Any, size: int = 0) -> Future[R]: ...


def run_inline(fn: Callable[..., R], *args: Any) -> Future[R]:
    """`fn(*args)` run now, delivered as a future (errors too, as a worker's would be)."""
    future: Future[R] = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:  # delivered through the future, like a worker's error
        future.set_exception(exc)
    return future


class InlineExecutor:
    """Every job in the calling thread: tests, one-core machines, small one-off commands."""

    workers = 1

    def submit(self, fn: Callable[..., R], /, *args: Any, size: int = 0) -> Future[R]:
        del size
        return run_inline(fn, *args)


INLINE = InlineExecutor()


@dataclass(frozen=True)
class Chunks(Generic[R]):
    """fn(chunk, *args) running over consecutive chunks of a list; `parts()` gathers them in order."""

    futures: list[Future[list[R]]]
    sizes: list[int]

    def parts(self, progress: Callable[[int, int], None] | None = None) -> Iterator[list[R]]:
        """Each chunk's results, in order, as soon as it is done."""
        done, total = 0, sum(self.sizes)
        for future, size in zip(self.futures, self.sizes, strict=True):
            yield future.result()
            done += size
            if progress:
                progress(done, total)


def map_chunks(executor: Executor, fn: Callable[..., list[R]], items: Sequence[Any], *args: Any,
               chunk: int = 4096) -> Chunks[R]:
    """Start fn over `items` in chunks; the caller gathers later."""
    starts = range(0, len(items), chunk)
    return Chunks([executor.submit(fn, list(items[i:i + chunk]), *args, size=len(items)) for i in starts],
                  [min(chunk, len(items) - i) for i in starts])


def map_stream(executor: Executor, fn: Callable[..., list[R]], parts: Iterable[list[Any]], *args: Any,
               size: int = 0) -> Iterator[list[R]]:
    """fn(part, *args) for each part as `parts` yields it; results in order.

    Only a few parts are in flight, so a long source is read while the workers compute
    and never held in memory at once; parts not started when the caller stops are cancelled.
    `size` is the whole job's size, for the executor's inline decision.
    """
    running: deque[Future[list[R]]] = deque()
    try:
        for part in parts:
            running.append(executor.submit(fn, part, *args, size=size or len(part)))
            if len(running) > 2 * executor.workers:
                yield running.popleft().result()
        while running:
            yield running.popleft().result()
    finally:  # the caller stopped early (an error, an abandoned exchange): drop what has not started
        for future in running:
            future.cancel()
