"""Both sides of each query: the querying node's `query.made` against the answering node's entries.

For every session between two nodes, the querying side logs `query.made` and
the answering side `query.served` (or `request.refused`), both with the
request id. An entry on one side without its counterpart on the other is what
an officer must explain: a deleted entry, a query that never happened, or a
session cut off between the two writes. Refusals that never reached the
answering node's admission (a bad certificate, a network failure) have no
counterpart by design and are listed apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SERVER_SIDE = ("query.served", "request.refused")


@dataclass
class Reconciliation:
    client_node: str
    server_node: str
    matched: int = 0
    missing_on_server: list[dict[str, Any]] = field(default_factory=list)  # ok query.made, nothing served
    missing_on_client: list[dict[str, Any]] = field(default_factory=list)  # served, no query.made
    disagreeing: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)  # counts differ
    unanswered_refusals: list[dict[str, Any]] = field(default_factory=list)  # refused before the server logged

    @property
    def clean(self) -> bool:
        return not (self.missing_on_server or self.missing_on_client or self.disagreeing)


def reconcile(client: Iterable[dict[str, Any]], server: Iterable[dict[str, Any]], client_node: str,
              server_node: str) -> Reconciliation:
    """Pair the two logs' query entries by request id (bodies of verified logs, intents skipped)."""
    result = Reconciliation(client_node, server_node)
    made = {str(b.get("request_id")): b for b in client
            if b.get("operation") == "query.made" and b.get("partner") == server_node and b.get("phase") != "intent"}
    served = {str(b.get("request_id")): b for b in server
              if b.get("operation") in SERVER_SIDE and b.get("partner") == client_node and b.get("request_id")}
    for request_id, body in made.items():
        other = served.pop(request_id, None)
        if other is None:
            (result.missing_on_server if body.get("outcome") == "ok" else result.unanswered_refusals).append(body)
        elif _agree(body, other):
            result.matched += 1
        else:
            result.disagreeing.append((body, other))
    result.missing_on_client = list(served.values())
    return result


def _agree(made: dict[str, Any], other: dict[str, Any]) -> bool:
    """Same outcome, and for a served query the same number of elements and the same session."""
    if other.get("operation") == "request.refused":
        return made.get("outcome") != "ok"
    return bool(made.get("outcome") == "ok" and made.get("client_elements") == other.get("client_elements")
                and made.get("session_id") == other.get("session_id"))
