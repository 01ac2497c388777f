"""Close streams that stall: read the request stream with a time limit between messages."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

from psi.errors import IdleTimeoutError

T = TypeVar("T")
_END = object()


def with_idle_timeout(requests: Iterator[T], seconds: float) -> Iterator[T]:
    """Yield from `requests`, raising IdleTimeoutError if no message comes for `seconds`.

    A reader thread pulls from gRPC's blocking iterator; it ends when the call ends.
    """
    inbox: queue.Queue[object] = queue.Queue(maxsize=4)  # bounded: backpressure on the sender

    def pump() -> None:
        try:
            for item in requests:
                inbox.put(item)
        except Exception as exc:  # the call was cancelled or failed: hand it to the reader
            inbox.put(exc)
            return
        inbox.put(_END)

    threading.Thread(target=pump, daemon=True, name="request-reader").start()
    while True:
        try:
            item = inbox.get(timeout=seconds)
        except queue.Empty:
            raise IdleTimeoutError(f"no message for {seconds:g} s; the session is closed") from None
        if item is _END:
            return
        if isinstance(item, Exception):
            raise item
        yield item  # type: ignore[misc]
