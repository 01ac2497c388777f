"""The Matching servicer: decode, admit, call the core, encode.

Every call is admitted by `server.admission` (identity from the caller's
certificate) before any snapshot or group operation. Each disclosure (tags,
evaluations) happens only after its audit entry is on disk; each refusal is
audited before the caller hears of it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import grpc

from agency.audit.log import utc_now
from agency.faults import crash_point
from psi.errors import OutOfOrderError, StaleStateError, UnauthenticatedError
from psi.executor import Executor
from psi.messages import BlindedBatch, Finish, SessionStart
from psi.server_session import ServerSession, run_evaluation
from psi.tag_sync import plan_tags, tag_chunks
from psiwire import codec
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from psiwire.identity import PeerCertificate, identity_from_pem
from server import audit_events as events
from server.admission import Admission, Admitted, Ask
from server.idle import with_idle_timeout
from server.metrics import Metrics
from server.node import Node
from server.status_codes import grpc_errors

log = logging.getLogger(__name__)
PLAINTEXT_PARTNER = "plaintext-loopback"
UNVERIFIED_PARTNER = "(unverified)"  # how a refusal names a caller whose certificate names no one
_MARGIN = 1024  # bytes of gRPC framing under the message limit


def peer_identity(context: grpc.ServicerContext) -> PeerCertificate:
    """The partner's certificate, parsed here (`psiwire.identity`): exactly one CN, no control characters."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert", [])
    if len(pems) == 1:
        return identity_from_pem(pems[0])
    if not pems and auth.get("transport_security_type", [b"insecure"]) == [b"insecure"]:
        return PeerCertificate(PLAINTEXT_PARTNER, "")  # load_config allows plaintext on loopback only
    raise UnauthenticatedError("the connection carries no single client certificate")


def _refused_partner(context: grpc.ServicerContext) -> str:
    try:
        return peer_identity(context).name
    except UnauthenticatedError:
        return UNVERIFIED_PARTNER


class MatchingService(pb_grpc.MatchingServicer):
    """Decode, admit (`server.admission`), call the core, encode: nothing else happens here."""

    def __init__(self, node: Node, executor: Executor, metrics: Metrics | None = None) -> None:
        self._node = node
        self._admission = Admission(node)
        self._executor = executor
        self._metrics = metrics or Metrics(node)

    def _refusal(self, context: grpc.ServicerContext, rpc: str, session_id: str = "",
                 requested: list[SessionStart] | None = None) -> Callable[[grpc.StatusCode, str], None]:
        """Audits a refusal, with what the partner asked for when a session start arrived."""
        def record(code: grpc.StatusCode, message: str) -> None:
            start = requested[-1] if requested else None
            self._node.audit.append(events.refused(_refused_partner(context), rpc, code.name, message, start,
                                                   session_id))
        return record

    def GetParameters(self, request: pb.GetParametersRequest, context: grpc.ServicerContext) -> pb.Parameters:
        with grpc_errors(context, self._refusal(context, "GetParameters")):
            self._admission.admit(peer_identity(context), lambda: Ask("GetParameters",
                                                                      codec.list_id_from_pb(request)))
            return codec.parameters_to_pb(self._node.parameters())
        raise AssertionError("unreachable")

    def StreamTags(self, request: pb.StreamTagsRequest,
                   context: grpc.ServicerContext) -> Iterator[pb.TagChunk]:
        with grpc_errors(context, self._refusal(context, "StreamTags")):
            partner = self._admission.admit(peer_identity(context), lambda: Ask(
                "StreamTags", codec.list_id_from_pb(request), codec.mode_from_pb(request.mode))).partner
            _, snapshot = self._node.current()
            plan = plan_tags(codec.tag_request_from_pb(request), snapshot)
            changes = self._node.store.changes(snapshot.key_epoch, plan.since_version) if plan.delta else None
            self._node.audit.append(events.tags_served(partner, plan.mode, self._node.parameters(snapshot),
                                                       plan.offset, since_version=plan.since_version))
            for chunk in tag_chunks(plan, snapshot, changes, self._node.config.limits.max_message_bytes - _MARGIN):
                message = codec.tag_chunk_to_pb(chunk)
                self._metrics.tag_bytes(partner, message.ByteSize())
                yield message

    def Evaluate(self, request_iterator: Iterator[pb.EvaluateRequest],
                 context: grpc.ServicerContext) -> Iterator[pb.EvaluateResponse]:
        session_id = uuid.uuid4().hex
        requested: list[SessionStart] = []
        with grpc_errors(context, self._refusal(context, "Evaluate", session_id, requested)):
            requests = with_idle_timeout(request_iterator, self._node.config.idle_seconds, context)

            def ask() -> Ask:  # read and decoded only once the caller's identity is known
                first = codec.client_message_from_pb(next(requests, pb.EvaluateRequest()))
                if not isinstance(first, SessionStart):
                    raise OutOfOrderError("a batch must follow the session start: a session begins with its start")
                requested.append(first)
                return Ask("Evaluate", first.list_id, first.mode, first.total_elements, first.request_id)

            admitted = self._admission.admit(peer_identity(context), ask)
            yield from self._evaluate(admitted, requested[0], session_id, requests)

    def _evaluate(self, admitted: Admitted, start: SessionStart, session_id: str,
                  requests: Iterator[pb.EvaluateRequest]) -> Iterator[pb.EvaluateResponse]:
        node, partner = self._node, admitted.partner
        unpaid = start.total_elements  # reserved by the admission, charged batch by batch
        try:
            with self._admission.session(admitted):
                key, snapshot = node.current()
                if key.epoch != admitted.key.epoch:  # a rotation between admission and here
                    raise StaleStateError(f"the key epoch changed to {key.epoch}; fetch the parameters again")
                session = ServerSession(key.secret, node.parameters(snapshot), session_id)
                accepted = session.start(start)
                node.audit.append(events.query_served(partner, start, session.parameters, session_id))
                self._metrics.query(partner, start.mode)
                yield codec.server_message_to_pb(accepted)
                log.info("session %s from %s: %s, %d elements", session_id, partner, start.mode.value,
                         start.total_elements)
                for request in requests:
                    msg = codec.client_message_from_pb(request)
                    if isinstance(msg, SessionStart):
                        raise OutOfOrderError("the session has already started")
                    if isinstance(msg, BlindedBatch):
                        job = session.batch(msg)
                        evaluated = run_evaluation(job, self._executor)
                        self._admission.charge(admitted, job.count)  # before anything is sent
                        self._metrics.evaluated(partner, job.count)
                        crash_point("serve.after_charge")
                        unpaid -= job.count
                        yield codec.server_message_to_pb(session.evaluated(job, evaluated))
                    elif isinstance(msg, Finish):
                        for out in session.finish(msg):
                            yield codec.server_message_to_pb(out)
                        log.info("session %s from %s: done", session_id, partner)
                        return
                raise OutOfOrderError("the stream ended before finish")
        finally:
            self._admission.release(admitted, unpaid)

    def RequestFollowUp(self, request: pb.FollowUpRequest, context: grpc.ServicerContext) -> pb.FollowUpStatus:
        with grpc_errors(context, self._refusal(context, "RequestFollowUp")):
            admitted = self._admission.admit(peer_identity(context), lambda: Ask(
                "RequestFollowUp", codec.list_id_from_pb(request)))
            fields = codec.followup_request_from_pb(request)
            now = utc_now()
            item = self._node.followups.receive(admitted.partner, admitted.agreement, admitted.key,
                                                self._node.config.profile, fields, now)
            return codec.followup_status_to_pb(item.public(now))
        raise AssertionError("unreachable")

    def GetFollowUp(self, request: pb.GetFollowUpRequest, context: grpc.ServicerContext) -> pb.FollowUpStatus:
        with grpc_errors(context, self._refusal(context, "GetFollowUp")):
            admitted = self._admission.admit(peer_identity(context), lambda: Ask("GetFollowUp"))
            item = self._node.followups.for_partner(admitted.partner, codec.followup_id_from_pb(request))
            return codec.followup_status_to_pb(item.public(utc_now()))
        raise AssertionError("unreachable")
