"""Close streams that stall: read the request stream with a time limit between messages."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Protocol, TypeVar

from psi.errors import IdleTimeoutError

T = TypeVar("T")
_END = object()
_PUT_POLL_SECONDS = 0.2


class CallContext(Protocol):
    def add_callback(self, callback: object) -> bool: ...


def with_idle_timeout(requests: Iterator[T], seconds: float, context: CallContext) -> Iterator[T]:
    """Yield from `requests`, raising IdleTimeoutError if no message comes for `seconds`.

    A reader thread pulls from gRPC's blocking iterator. It ends when the call ends, however
    the call ends: whatever the client still sends after a refusal or after finish is dropped,
    so the thread never waits for ever on a full inbox.
    """
    inbox: queue.Queue[object] = queue.Queue(maxsize=4)  # bounded: backpressure on the sender
    ended = threading.Event()

    def end() -> None:  # the call ended (cancelled, or done): wake the handler if it waits
        ended.set()
        with contextlib.suppress(queue.Full):
            inbox.put_nowait(_END)

    context.add_callback(end)

    def deliver(item: object) -> bool:
        while not ended.is_set():
            try:
                inbox.put(item, timeout=_PUT_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in requests:
                if not deliver(item):
                    return
        except Exception as exc:  # the call was cancelled or failed: hand it to the reader
            deliver(exc)
            return
        deliver(_END)

    threading.Thread(target=pump, daemon=True, name="request-reader").start()
    try:
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
    finally:
        ended.set()  # the handler is done with the stream, even before gRPC ends the call
