"""Who may ask what: the node's agreements with its partners, and their enforcement.

    [partners.agency-a]
    lists = ["wanted-persons"]
    modes = ["intersection", "cardinality"]   # or only ["cardinality"]
    max_query_size = 100000                   # blinded elements per request
    budget_per_epoch = 1000000                # blinded elements evaluated per key epoch
    rate_per_minute = 60                      # requests (tag streams and sessions) per minute
    max_sessions = 2                          # concurrent evaluation sessions
    followup_reply_hours = 48                 # deadline to answer a follow-up request

Budgets are kept in the node's store, so they survive a restart; the rate
limit and session counts live in memory. A node without partners serves no one.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from psi.errors import (
    BudgetExceededError,
    ConfigurationError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from psi.messages import Mode

_KNOWN = {"lists", "modes", "max_query_size", "budget_per_epoch", "rate_per_minute", "max_sessions",
          "followup_reply_hours"}


@dataclass(frozen=True)
class Agreement:
    partner: str
    lists: tuple[str, ...]
    modes: tuple[Mode, ...]
    max_query_size: int = 100_000
    budget_per_epoch: int = 1_000_000
    rate_per_minute: int = 60
    max_sessions: int = 2
    followup_reply_hours: int = 48


def parse_agreements(doc: Any) -> dict[str, Agreement]:
    """The [partners.*] tables of a config. Raises ConfigurationError naming the bad key."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigurationError("[partners] must hold one table per partner, e.g. [partners.agency-a]")
    agreements = {}
    for partner, table in doc.items():
        where = f"[partners.{partner}]"
        if not isinstance(table, dict) or set(table) - _KNOWN:
            raise ConfigurationError(f"{where} may only set {sorted(_KNOWN)}")
        lists, modes = table.get("lists"), table.get("modes", ["intersection"])
        if not isinstance(lists, list) or not lists or not all(isinstance(x, str) for x in lists):
            raise ConfigurationError(f"{where} lists must name at least one list")
        if not isinstance(modes, list) or not modes or not set(modes) <= {m.value for m in Mode}:
            raise ConfigurationError(f"{where} modes must be a non-empty subset of intersection, cardinality")
        numbers = {k: table[k] for k in _KNOWN - {"lists", "modes"} if k in table}
        if not all(isinstance(v, int) and v > 0 for v in numbers.values()):
            raise ConfigurationError(f"{where} limits must be positive integers")
        agreements[partner] = Agreement(partner, tuple(lists), tuple(Mode(m) for m in modes), **numbers)
    return agreements


def policy_hash(agreements: dict[str, Agreement]) -> str:
    canonical = json.dumps({p: asdict(a) for p, a in sorted(agreements.items())}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


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

    @staticmethod
    def check_request(agreement: Agreement, list_id: str, mode: Mode | None = None,
                      elements: int | None = None) -> None:
        if list_id not in agreement.lists:
            raise PermissionDeniedError(f"the agreement with '{agreement.partner}' does not cover list '{list_id}'")
        if mode is not None and mode not in agreement.modes:
            allowed = ", ".join(m.value for m in agreement.modes)
            raise PermissionDeniedError(f"the agreement with '{agreement.partner}' allows only mode(s) {allowed}")
        if elements is not None and elements > agreement.max_query_size:
            raise PermissionDeniedError(f"the agreement allows at most {agreement.max_query_size} elements per "
                                        f"request; this one announces {elements}")
