"""The Matching servicer: authorise, decode, call the core, encode, and audit.

Every call is checked against the caller's agreement (identity from its
certificate). Each disclosure (tags, evaluations) happens only after its
audit entry is on disk; each refusal is audited before the caller hears of it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import grpc

from agency.agreements import Agreement
from agency.audit.log import utc_now
from psi.errors import InputError, NotFoundError, OutOfOrderError, StaleStateError
from psi.messages import BlindedBatch, Done, Finish, SessionStart
from psi.server_session import ServerSession
from psi.tagset import delta_chunks
from psiwire import codec
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from server import audit_events as events
from server.idle import with_idle_timeout
from server.node import Node
from server.status_codes import grpc_errors

log = logging.getLogger(__name__)
PLAINTEXT_PARTNER = "plaintext-loopback"


def peer_identity(context: grpc.ServicerContext) -> str:
    """The partner's name from its verified client certificate (CN)."""
    auth = context.auth_context()
    names = auth.get("x509_common_name", [])
    if names:
        return str(names[0].decode())
    return PLAINTEXT_PARTNER if not auth.get("transport_security_type") or auth.get(
        "transport_security_type") == [b"insecure"] else "unknown"


class MatchingService(pb_grpc.MatchingServicer):
    def __init__(self, node: Node) -> None:
        self._node = node

    def _list_id(self, list_id: str) -> str:
        own = self._node.config.list_id
        if list_id and list_id != own:
            raise NotFoundError(f"no list '{list_id}' on this node; it serves '{own}'")
        return own

    def _refusal(self, context: grpc.ServicerContext, rpc: str, session_id: str = "",
                 requested: list[SessionStart] | None = None) -> Callable[[grpc.StatusCode, str], None]:
        """Audits a refusal, with what the partner asked for when a session start arrived."""
        def record(code: grpc.StatusCode, message: str) -> None:
            start = requested[-1] if requested else None
            self._node.audit.append(events.refused(peer_identity(context), rpc, code.name, message, start,
                                                   session_id))
        return record

    def GetParameters(self, request: pb.GetParametersRequest, context: grpc.ServicerContext) -> pb.Parameters:
        with grpc_errors(context, self._refusal(context, "GetParameters")):
            agreement = self._node.policy.agreement(peer_identity(context))
            self._node.policy.check_request(agreement, self._list_id(request.list_id))
            return codec.parameters_to_pb(self._node.parameters())
        raise AssertionError("unreachable")

    def StreamTags(self, request: pb.StreamTagsRequest,
                   context: grpc.ServicerContext) -> Iterator[pb.TagChunk]:
        with grpc_errors(context, self._refusal(context, "StreamTags")):
            partner = peer_identity(context)
            agreement = self._node.policy.agreement(partner)
            mode = codec.mode_from_pb(request.mode)
            self._node.policy.check_request(agreement, self._list_id(request.list_id), mode)
            self._node.policy.rates.take(agreement)
            _, snapshot = self._node.current()
            if request.key_epoch != snapshot.key_epoch:
                raise StaleStateError(
                    f"key epoch {request.key_epoch} is not the current epoch {snapshot.key_epoch}; "
                    "fetch the parameters again"
                )
            if request.list_version and request.list_version != snapshot.list_version:
                raise StaleStateError(
                    f"the list changed (version {request.list_version} -> {snapshot.list_version}); "
                    "restart from offset 0"
                )
            if request.offset > snapshot.count:
                raise InputError(f"offset {request.offset} is past the {snapshot.count} tags")
            chunk_size = self._node.config.limits.tag_chunk_size
            if 0 < request.since_version <= snapshot.list_version and \
                    request.cached_tag_length == snapshot.tag_length and request.offset == 0:
                version, total, added, removed = self._node.store.changes(snapshot.key_epoch, request.since_version)
                self._node.audit.append(events.tags_served(partner, mode, self._node.parameters(snapshot),
                                                           0, since_version=request.since_version))
                for chunk in delta_chunks(snapshot.key_epoch, version, total, snapshot.tag_length, mode,
                                          added, removed, chunk_size):
                    yield codec.tag_chunk_to_pb(chunk)
                return
            self._node.audit.append(events.tags_served(partner, mode, self._node.parameters(snapshot),
                                                       request.offset))
            for chunk in snapshot.chunks(mode, request.offset, chunk_size):
                yield codec.tag_chunk_to_pb(chunk)

    def Evaluate(self, request_iterator: Iterator[pb.EvaluateRequest],
                 context: grpc.ServicerContext) -> Iterator[pb.EvaluateResponse]:
        session_id = uuid.uuid4().hex
        partner = peer_identity(context)
        requested: list[SessionStart] = []
        with grpc_errors(context, self._refusal(context, "Evaluate", session_id, requested)):
            key, snapshot = self._node.current()
            session = ServerSession(key.secret, self._node.parameters(snapshot), session_id)
            agreement = self._node.policy.agreement(partner)
            with self._node.policy.sessions.session(agreement):
                yield from self._evaluate(session, agreement, partner, requested,
                                          with_idle_timeout(request_iterator, self._node.config.idle_seconds))

    def RequestFollowUp(self, request: pb.FollowUpRequest, context: grpc.ServicerContext) -> pb.FollowUpStatus:
        with grpc_errors(context, self._refusal(context, "RequestFollowUp")):
            partner = peer_identity(context)
            agreement = self._node.policy.agreement(partner)
            self._node.policy.check_request(agreement, self._list_id(request.list_id))
            self._node.policy.rates.take(agreement)
            fields = {name: getattr(request, name) for name in (
                "reference", "purpose", "case_reference", "officer", "message", "request_id", "proof")}
            now = utc_now()
            item = self._node.followups.receive(partner, agreement, self._node.key, self._node.config.profile,
                                                fields, now)
            return codec.followup_status_to_pb(item.public(now))
        raise AssertionError("unreachable")

    def GetFollowUp(self, request: pb.GetFollowUpRequest, context: grpc.ServicerContext) -> pb.FollowUpStatus:
        with grpc_errors(context, self._refusal(context, "GetFollowUp")):
            partner = peer_identity(context)
            self._node.policy.agreement(partner)
            item = self._node.followups.for_partner(partner, request.followup_id)
            return codec.followup_status_to_pb(item.public(utc_now()))
        raise AssertionError("unreachable")

    def _evaluate(self, session: ServerSession, agreement: Agreement, partner: str,
                  requested: list[SessionStart], requests: Iterator[pb.EvaluateRequest]
                  ) -> Iterator[pb.EvaluateResponse]:
        node, charged = self._node, 0
        epoch = session.key_epoch
        try:
            for request in requests:
                msg = codec.client_message_from_pb(request)
                if isinstance(msg, SessionStart):
                    requested.append(msg)
                    node.policy.check_request(agreement, self._list_id(msg.list_id), msg.mode, msg.total_elements)
                    node.policy.rates.take(agreement)
                    accepted = session.start(msg)
                    node.store.remember_request(partner, msg.request_id)
                    node.store.charge_budget(partner, epoch, msg.total_elements, agreement.budget_per_epoch)
                    charged = msg.total_elements
                    node.audit.append(events.query_served(partner, msg, session.parameters, session.session_id))
                    yield codec.server_message_to_pb(accepted)
                    log.info("session %s from %s: %s, %d elements", session.session_id, partner,
                             msg.mode.value, msg.total_elements)
                elif isinstance(msg, BlindedBatch):
                    yield codec.server_message_to_pb(session.batch(msg))
                elif isinstance(msg, Finish):
                    for out in session.finish(msg):
                        yield codec.server_message_to_pb(out)
                        if isinstance(out, Done):
                            log.info("session %s from %s: done", session.session_id, partner)
                            return
            raise OutOfOrderError("the stream ended before finish")
        finally:
            if not session.done:  # only what was evaluated counts against the budget
                node.store.refund_budget(partner, epoch, charged - session.received)
