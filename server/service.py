"""The Matching servicer: decode, admit, call the core, encode.

Every call is admitted by `server.admission` (identity from the caller's
certificate) before any snapshot or group operation. Each disclosure (tags,
evaluations) happens only after its audit entry is on disk; each refusal is
audited before the caller hears of it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Generator, Iterator

import grpc

from agency.audit.log import utc_now
from agency.faults import crash_point
from psi.errors import OutOfOrderError, StaleStateError, UnauthenticatedError
from psi.executor import Executor
from psi.messages import BlindedBatch, BulkChunk, BulkStart, Finish, Mode, SessionStart
from psi.server_session import ServerSession, run_evaluation
from psi.tag_sync import plan_tags, tag_chunks
from psiwire import codec
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from psiwire.identity import PeerCertificate, identity_from_pem
from server import audit_events as events
from server import bulk
from server.admission import Admission, Admitted, Ask
from server.idle import with_idle_timeout
from server.metrics import Metrics
from server.node import Node
from server.status_codes import grpc_errors

log = logging.getLogger(__name__)
PLAINTEXT_PARTNER = "plaintext-loopback"
UNVERIFIED_PARTNER = "(unverified)"  # how a refusal names a caller whose certificate names no one
_MARGIN = 1024  # bytes of gRPC framing under the message limit
_CUT_GRACE_SECONDS = 1.0  # a bulk stream ended before finish: time for gRPC to tell a cut call from a closed stream


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


class _BulkTrack:
    """What one BulkMatch call has got to, for its one audit entry."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.start: BulkStart | None = None
        self.items = 0
        self.partner: str | None = None
        self.serving: bulk.BulkServing | None = None  # once the session exists (admitted, start checked)
        self.aborted = False  # the client ended its stream before finish
        self.released = False  # the results are being sent: the session's entry is written
        self.call_ended = threading.Event()  # gRPC ended the call (cancelled, cut, or done)

    def received(self) -> int:
        return self.serving.received if self.serving else 0

    def end_state(self) -> str:
        """How a session ended with a refusal: the client's stream ended before finish ("aborted"), or a
        refused message, a stalled stream or the server's own failure ("broken"); "" for a request that
        never became a session."""
        if self.serving is None:
            return ""
        return "aborted" if self.aborted else "broken"


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

    def BulkMatch(self, request_iterator: Iterator[pb.BulkRequest],
                  context: grpc.ServicerContext) -> Iterator[pb.BulkResponse]:
        """One bulk session (`server.bulk`), admitted as Evaluate is, with one audit entry however it ends."""
        track = _BulkTrack(uuid.uuid4().hex)
        context.add_callback(track.call_ended.set)
        with grpc_errors(context, self._bulk_refusal(context, track)):
            requests = with_idle_timeout(request_iterator, self._node.config.idle_seconds, context)

            def ask() -> Ask:  # read and decoded only once the caller's identity is known
                first = codec.bulk_client_message_from_pb(next(requests, pb.BulkRequest()))
                if not isinstance(first, BulkStart):
                    raise OutOfOrderError("a bulk session begins with its start")
                track.start = first
                track.items = bulk.announced_items(first.hello)
                return Ask("BulkMatch", first.list_id, Mode.BULK, bulk.evaluations(track.items), first.request_id)

            admitted = self._admission.admit(peer_identity(context), ask)
            yield from self._bulk(admitted, track, requests, context)

    def _bulk_refusal(self, context: grpc.ServicerContext, track: _BulkTrack) -> Callable[[grpc.StatusCode, str], None]:
        """Audits a refused request, or how an admitted session ended without results: its one entry."""
        def record(code: grpc.StatusCode, message: str) -> None:
            self._node.audit.append(events.bulk_refused(
                _refused_partner(context), code.name, message, track.start, track.items, track.session_id,
                end_state=track.end_state(), correction_bytes=track.received()))
        return record

    def _bulk(self, admitted: Admitted, track: _BulkTrack, requests: Iterator[pb.BulkRequest],
              context: grpc.ServicerContext) -> Iterator[pb.BulkResponse]:
        node, partner, start = self._node, admitted.partner, track.start
        assert start is not None
        unpaid = bulk.evaluations(track.items)  # reserved by the admission, charged at once before the results
        track.partner = partner
        try:
            with self._admission.session(admitted):
                key = node.key
                if key.epoch != admitted.key.epoch:  # a rotation between admission and here
                    raise StaleStateError(f"the key epoch changed to {key.epoch}; fetch the parameters again")
                params = node.parameters()
                serving = bulk.BulkServing(params, track.session_id, admitted.max_elements,
                                           bulk.chunk_limit(node.config.limits.max_message_bytes, _MARGIN),
                                           self._executor)
                serving.check_start(start)  # before the list is read
                track.serving = serving
                accepted = serving.accept(start, node.bulk_list(key))
                self._metrics.query(partner, Mode.BULK)
                log.info("bulk session %s from %s: %d items against %d entries", track.session_id, partner,
                         track.items, serving.server_entries)
                yield codec.bulk_server_message_to_pb(accepted)
                if not (yield from self._bulk_corrections(serving, requests, context, track)):
                    return
                self._admission.charge(admitted, unpaid)  # before anything is disclosed
                unpaid = 0
                crash_point("serve.after_charge")
                node.audit.append(events.bulk_served(partner, start, track.items, params, track.session_id,
                                                     list_version=serving.list_version,
                                                     server_entries=serving.server_entries,
                                                     correction_bytes=serving.received))
                track.released = True
                self._metrics.evaluated(partner, track.items)
                for out in serving.results():
                    yield codec.bulk_server_message_to_pb(out)
                log.info("bulk session %s from %s: done, %d result bytes", track.session_id, partner,
                         serving.results_sent)
        except (grpc.RpcError, GeneratorExit) as exc:  # the call was cut under us (reading, or sending)
            if not track.released:
                self._bulk_cut(track, "the call was cut")
            if isinstance(exc, GeneratorExit):
                raise
        finally:
            self._admission.release(admitted, unpaid)

    def _bulk_corrections(self, serving: bulk.BulkServing, requests: Iterator[pb.BulkRequest],
                          context: grpc.ServicerContext, track: _BulkTrack
                          ) -> Generator[pb.BulkResponse, None, bool]:
        """Corrections up to finish, then the end of the client's stream; returns whether the call still runs."""
        for request in requests:
            msg = codec.bulk_client_message_from_pb(request)
            if isinstance(msg, BulkStart):
                raise OutOfOrderError("the session has already started")
            if not isinstance(msg, BulkChunk):
                serving.finish()
                break
            yield codec.bulk_server_message_to_pb(serving.correction(msg))
        else:
            # A cut call (cancelled, a message over the limit) also ends the stream: gRPC says so a moment later.
            if track.call_ended.wait(_CUT_GRACE_SECONDS) or not context.is_active():  # nobody hears a status
                self._bulk_cut(track, "the call ended before finish")
                return False
            track.aborted = True
            raise OutOfOrderError("the stream ended before finish")
        if next(requests, None) is not None:  # finish is the last message: nothing may follow it
            raise OutOfOrderError("a message after finish: finish is the last message of a bulk session")
        if not context.is_active():
            self._bulk_cut(track, "the call ended before the results")
            return False
        return True

    def _bulk_cut(self, track: _BulkTrack, message: str) -> None:
        """A session whose call ended under it (cancelled, connection lost): audited as broken."""
        log.info("bulk session %s: %s", track.session_id, message)
        self._node.audit.append(events.bulk_refused(
            UNVERIFIED_PARTNER if track.partner is None else track.partner, "CANCELLED", message, track.start,
            track.items, track.session_id, end_state="broken", correction_bytes=track.received()))

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
