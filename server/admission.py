"""The one door of the node: every partner request is admitted here, or refused, before any work.

    identity -> agreement (+ pinned certificate) -> rate -> list -> mode -> size -> serving key
    -> replay + budget

Evaluate and BulkMatch (mode `bulk`, sized by the cuckoo bins of the items its hello announces) are admitted alike.
Each check exists once, in this order, with one error class (and so one gRPC
status, `server.status_codes`) per failure:

    UnauthenticatedError    the certificate names no partner, or not  UNAUTHENTICATED
                            the one its agreement pins
    NotFoundError           this node serves no such list             NOT_FOUND
    PermissionDeniedError   list, mode or size outside the agreement  PERMISSION_DENIED
    BudgetExceededError     rate, sessions or evaluation budget       RESOURCE_EXHAUSTED
    ConfigurationError      the node cannot serve (key unusable)      UNAVAILABLE
    ReplayError             a request id used before                  ALREADY_EXISTS

The rate is taken before the request is decoded: every request of a known partner costs a
token, refused or not, so a partner cannot flood the node (and its audit log) with refusals.
An empty list id means the node's own list, everywhere. Replay ids and the
budget check share one store transaction; the servicer writes the audit
entry after it commits and before anything is disclosed (a crash in between
consumes a request id, and discloses nothing). Budgets are charged per evaluated batch
(`charge`), so a session cut short pays only for what it was sent; the
elements a running session announced but has not yet been charged are
reserved here, so concurrent sessions cannot overdraw the budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from agency.agreements import Agreement
from agency.keys import ServerKey
from psi.errors import BudgetExceededError, NotFoundError, PermissionDeniedError, UnauthenticatedError
from psi.messages import Mode
from psiwire.identity import PeerCertificate
from server.node import Node


@dataclass(frozen=True)
class Ask:
    """What a request asks for, as decoded from the wire."""

    rpc: str
    list_id: str = ""
    mode: Mode | None = None
    elements: int = 0  # blinded elements a session announces; a bulk session's cuckoo bins
    request_id: str | None = None  # replay-protected requests only


@dataclass(frozen=True)
class Admitted:
    partner: str
    agreement: Agreement
    list_id: str
    key: ServerKey
    max_elements: int = 0  # per request: min(the agreement's, the node's max_query_size)


class Admission:
    """Admits requests for one node; holds the budget reservations of running sessions."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._lock = threading.Lock()
        self._reserved: dict[tuple[str, int], int] = {}  # (partner, epoch) -> announced, not yet charged

    def admit(self, peer: PeerCertificate, decode: Callable[[], Ask]) -> Admitted:
        """Check what `decode` reads off the request for `peer`, in the documented order; raise on refusal.

        The request is decoded only once the partner is known and has paid its rate: a stranger
        learns nothing, not even whether its message was well formed.
        """
        node, partner = self._node, peer.name
        agreement = node.policy.agreement(partner)
        if agreement.certificate_sha256 and agreement.certificate_sha256 != peer.sha256:
            raise UnauthenticatedError(f"the certificate for '{partner}' is not the one its agreement pins")
        node.policy.rates.take(agreement)
        ask = decode()
        own = node.config.list_id
        list_id = ask.list_id or own
        if list_id != own:
            raise NotFoundError(f"no list '{list_id}' on this node; it serves '{own}'")
        if list_id not in agreement.lists:
            raise PermissionDeniedError(f"the agreement with '{partner}' does not cover list '{list_id}'")
        if ask.mode is not None and ask.mode not in agreement.modes:
            allowed = ", ".join(m.value for m in agreement.modes)
            raise PermissionDeniedError(f"the agreement with '{partner}' allows only mode(s) {allowed}")
        limit = min(agreement.max_query_size, node.config.limits.max_query_size)
        if ask.elements > limit:
            raise PermissionDeniedError(f"the agreement allows at most {limit} elements per request; "
                                        f"this one announces {ask.elements}")
        key = node.key
        admitted = Admitted(partner, agreement, list_id, key, limit)
        if ask.request_id is not None:
            with self._lock, node.store.transaction() as db:
                node.store.remember_request(partner, ask.request_id, key.epoch, db=db)
                self._check_budget(admitted, ask.elements, node.store.budget_used(partner, key.epoch, db=db))
                if ask.elements:
                    self._reserved[(partner, key.epoch)] = self._reserved.get((partner, key.epoch), 0) + ask.elements
        return admitted

    def _check_budget(self, admitted: Admitted, elements: int, used: int) -> None:
        limit = admitted.agreement.budget_per_epoch
        reserved = self._reserved.get((admitted.partner, admitted.key.epoch), 0)
        if used + reserved + elements > limit:
            raise BudgetExceededError(
                f"the evaluation budget of {limit} elements for key epoch {admitted.key.epoch} would be exceeded "
                f"({used} used, {reserved} reserved by running sessions, {elements} asked); "
                "it resets when the node rotates its key")

    def charge(self, admitted: Admitted, elements: int) -> None:
        """Charge one evaluated batch (before it is sent), out of what the session reserved."""
        with self._lock:
            self._node.store.charge_budget(admitted.partner, admitted.key.epoch, elements,
                                           admitted.agreement.budget_per_epoch)
            self._take_back(admitted, elements)

    def release(self, admitted: Admitted, elements: int) -> None:
        """Give back what an ended session reserved and was never charged."""
        with self._lock:
            self._take_back(admitted, elements)

    def _take_back(self, admitted: Admitted, elements: int) -> None:
        slot = (admitted.partner, admitted.key.epoch)
        left = self._reserved.get(slot, 0) - elements
        if left > 0:
            self._reserved[slot] = left
        else:
            self._reserved.pop(slot, None)

    @contextmanager
    def session(self, admitted: Admitted) -> Iterator[None]:
        """Count a running evaluation session against the agreement's concurrent-session limit."""
        with self._node.policy.sessions.session(admitted.agreement):
            yield
