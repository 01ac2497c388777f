"""The node's agreements with its partners, as its config states them.

    [partners.agency-a]
    lists = ["wanted-persons"]
    modes = ["intersection", "cardinality"]   # or only ["cardinality"]; "bulk" for BulkMatch
    max_query_size = 100000                   # blinded elements per request (bulk: the client's cuckoo bins)
    budget_per_epoch = 1000000                # blinded elements (bulk: cuckoo bins) per key epoch
    rate_per_minute = 60                      # requests (tag streams and sessions) per minute
    max_sessions = 2                          # concurrent evaluation sessions
    followup_reply_hours = 48                 # deadline to answer a follow-up request
    certificate_sha256 = "9f86d0..."          # optional: accept only this certificate (hex SHA-256 of its DER)

A node without partners serves no one. `server.policy` enforces them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from psi.errors import ConfigurationError
from psi.messages import Mode

_KNOWN = {"lists", "modes", "max_query_size", "budget_per_epoch", "rate_per_minute", "max_sessions",
          "followup_reply_hours", "certificate_sha256"}
_NUMBERS = _KNOWN - {"lists", "modes", "certificate_sha256"}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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
    certificate_sha256: str = ""  # empty: any certificate of the CA naming the partner


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
            raise ConfigurationError(f"{where} modes must be a non-empty subset of intersection, cardinality, bulk")
        numbers = {k: table[k] for k in sorted(_NUMBERS) if k in table}
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{where} {name} must be a positive integer, not {value!r}")
        pin = table.get("certificate_sha256", "")
        if not isinstance(pin, str) or (pin and not _SHA256_HEX.fullmatch(pin.lower())):
            raise ConfigurationError(f"{where} certificate_sha256 must be 64 hex digits (SHA-256 of the DER)")
        agreements[partner] = Agreement(partner, tuple(lists), tuple(Mode(m) for m in modes), **numbers,
                                        certificate_sha256=pin.lower())
    return agreements


def policy_hash(agreements: dict[str, Agreement]) -> str:
    canonical = json.dumps({p: asdict(a) for p, a in sorted(agreements.items())}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
