"""The pool that runs the group operations on both cores: the executor both sides inject.

With the native backend (`psi.backend`), whose batch calls release the GIL and run
in parallel inside, the pool is a few threads: nothing is pickled and nothing is
started. With the Python reference it is a pool of spawned worker processes.
Spawned, not forked: forking a process that runs gRPC threads is unsafe.
Small jobs run inline, where a round trip and pickling would cost more than
they save. Workers end with their parent: each watches its parent's pid, so a
SIGKILLed server or client leaves no orphaned workers holding memory.
The core's state machines never import this module (an import-linter contract).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from psi import backend
from psi.executor import run_inline

R = TypeVar("R")
INLINE_BELOW = 2048  # group operations: below this, a job runs in the calling thread while no workers run
INLINE_BELOW_WARM = 64  # once they run, a round trip costs about a millisecond: only tiny jobs stay here
_PARENT_POLL_SECONDS = 0.5


def cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: a thread that ends this worker once its parent is gone (re-parented)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _ready() -> int:
    return os.getpid()


class WorkerPool:
    """An `Executor` over `workers` threads or spawned processes, started on first use or by `start()`.

    `threads` defaults to whether the active backend releases the GIL: the one place this is chosen.
    """

    def __init__(self, workers: int | None = None, threads: bool | None = None) -> None:
        self.workers = workers or cpu_count()
        self.threads = backend.active().releases_gil if threads is None else threads
        self._lock = threading.Lock()
        self._pool: Executor | None = None

    def __repr__(self) -> str:
        kind = "threads" if self.threads else "processes"
        return f"WorkerPool(workers={self.workers}, {kind}, running={self._pool is not None})"

    def _running(self) -> Executor:
        with self._lock:
            if self._pool is None:
                self._pool = (ThreadPoolExecutor(self.workers, thread_name_prefix="psi-worker") if self.threads else
                              ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_exit_with_parent, initargs=(os.getpid(),)))
            return self._pool

    def _replace(self, broken: Executor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def inline_for(self, size: int) -> bool:
        """Whether a job of `size` group operations is better run in the calling thread."""
        warm = self._pool is not None or self.threads  # threads start in microseconds
        return self.workers == 1 or size < (INLINE_BELOW_WARM if warm else INLINE_BELOW)

    def start(self) -> list[int]:
        """Start every worker now (a server at start-up), so that the first query does not wait; their pids."""
        if self.workers == 1 or self.threads:
            return []
        pool = self._running()
        return sorted({f.result() for f in [pool.submit(_ready) for _ in range(self.workers * 4)]})

    def submit(self, fn: Callable[..., R], /, *args: Any, size: int = 0) -> Future[R]:
        if self.inline_for(size):
            return run_inline(fn, *args)
        pool = self._running()
        try:
            return pool.submit(fn, *args)
        except BrokenProcessPool:  # a worker died (e.g. killed for memory): the jobs it held failed, later ones run
            self._replace(pool)
            return self._running().submit(fn, *args)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
