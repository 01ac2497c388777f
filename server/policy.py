"""Who may ask what, enforced: the partners' agreements plus the in-memory rate and session limits.

Budgets are kept in the node's store, so they survive a restart; the rate
limit and session counts live in memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agency.agreements import Agreement
from psi.errors import BudgetExceededError, UnauthenticatedError


class RateLimiter:
    """A token bucket per partner: `rate_per_minute` requests, refilled continuously."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # partner -> (tokens, last time)
        self._lock = threading.Lock()

    def take(self, agreement: Agreement) -> None:
        rate = agreement.rate_per_minute / 60.0
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(agreement.partner, (float(agreement.rate_per_minute), now))
            tokens = min(float(agreement.rate_per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                wait = math.ceil((1.0 - tokens) / rate)
                self._buckets[agreement.partner] = (tokens, now)
                raise BudgetExceededError(
                    f"rate limit of {agreement.rate_per_minute} requests per minute reached; retry in {wait} s")
            self._buckets[agreement.partner] = (tokens - 1.0, now)


class SessionCounter:
    """Concurrent evaluation sessions per partner."""

    def __init__(self) -> None:
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def session(self, agreement: Agreement) -> Iterator[None]:
        with self._lock:
            active = self._active.get(agreement.partner, 0)
            if active >= agreement.max_sessions:
                raise BudgetExceededError(
                    f"{agreement.max_sessions} concurrent sessions are allowed and {active} are running; "
                    "retry when one ends")
            self._active[agreement.partner] = active + 1
        try:
            yield
        finally:
            with self._lock:
                self._active[agreement.partner] -= 1


class Policy:
    """The agreements plus the in-memory limits; budgets are charged through the store."""

    def __init__(self, agreements: dict[str, Agreement]) -> None:
        self.agreements = agreements
        self.rates = RateLimiter()
        self.sessions = SessionCounter()

    def agreement(self, partner: str) -> Agreement:
        agreement = self.agreements.get(partner)
        if agreement is None:
            raise UnauthenticatedError(f"the certificate for '{partner}' does not name a partner of this node")
        return agreement
