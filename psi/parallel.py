"""Group operations on both cores: a pool of spawned worker processes.

Spawned, not forked: forking a process that runs gRPC threads is unsafe.
Small jobs run inline, where a pool's start-up and pickling would cost more
than they save; once the workers run, only tiny jobs do.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

R = TypeVar("R")
INLINE_BELOW = 2048  # items: below this, a job runs in the calling process while no workers run
INLINE_BELOW_WARM = 64  # once they run, a round trip costs about a millisecond: only tiny jobs stay here

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def worker_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _shared_pool() -> ProcessPoolExecutor:
    global _pool  # noqa: PLW0603  (one pool per process, started on first use)
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(worker_count(), mp_context=multiprocessing.get_context("spawn"))
            atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
        return _pool


def _replace(broken: ProcessPoolExecutor) -> None:
    global _pool  # noqa: PLW0603  (one pool per process)
    with _lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def inline_for(items: int) -> bool:
    """Whether a job of `items` group operations is better run in the calling process."""
    return items < (INLINE_BELOW_WARM if _pool is not None else INLINE_BELOW)


def _ready() -> bool:
    return True


def start() -> None:
    """Start every worker now (a server at start-up), so that the first query does not wait for them."""
    if worker_count() > 1:
        pool = _shared_pool()
        for future in [pool.submit(_ready) for _ in range(worker_count())]:
            future.result()


def submit(fn: Callable[..., R], *args: Any, inline: bool = False) -> Future[R]:
    """Run `fn(*args)` in a worker (or here, if `inline`); returns a future either way."""
    if inline or worker_count() == 1:
        future: Future[R] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # delivered through the future, like a worker's error
            future.set_exception(exc)
        return future
    pool = _shared_pool()
    try:
        return pool.submit(fn, *args)
    except BrokenProcessPool:  # a worker died (e.g. killed for memory): the jobs it held failed, later ones run
        _replace(pool)
        return _shared_pool().submit(fn, *args)


@dataclass(frozen=True)
class Chunks(Generic[R]):
    """fn(chunk, *args) running over consecutive chunks of a list; `results()` gathers them in order."""

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


def map_chunks(fn: Callable[..., list[R]], items: Sequence[Any], *args: Any, chunk: int = 4096) -> Chunks[R]:
    """Start fn over `items` in chunks on all cores (inline when small); the caller gathers later."""
    inline = inline_for(len(items))
    starts = range(0, len(items), chunk)
    return Chunks([submit(fn, list(items[i:i + chunk]), *args, inline=inline) for i in starts],
                  [min(chunk, len(items) - i) for i in starts])


def map_stream(fn: Callable[..., list[R]], parts: Iterable[list[Any]], *args: Any,
               inline: bool = False) -> Iterator[list[R]]:
    """fn(part, *args) for each part as `parts` yields it, on all cores; results in order.

    Only a few parts are in flight, so a long source is read while the workers compute
    and never held in memory at once; parts not started when the caller stops are cancelled.
    """
    running: deque[Future[list[R]]] = deque()
    try:
        for part in parts:
            running.append(submit(fn, part, *args, inline=inline))
            if len(running) > 2 * worker_count():
                yield running.popleft().result()
        while running:
            yield running.popleft().result()
    finally:  # the caller stopped early (an error, an abandoned exchange): drop what has not started
        for future in running:
            future.cancel()
