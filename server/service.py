"""The Matching servicer: decode, call the core, encode, and audit what it discloses.

Each disclosure (tags, evaluations) happens only after its audit entry is on
disk; each refusal is audited before the caller hears of it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import grpc

from psi.errors import InputError, NotFoundError, OutOfOrderError, StaleStateError
from psi.messages import BlindedBatch, Done, Finish, SessionStart
from psi.server_session import ServerSession
from psiwire import codec
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from server.audit import events
from server.node import Node
from server.status_codes import grpc_errors

log = logging.getLogger(__name__)


def peer_identity(context: grpc.ServicerContext) -> str:
    """The partner's name from its verified client certificate."""
    names = context.auth_context().get("x509_common_name", [])
    return names[0].decode() if names else "unknown"


class MatchingService(pb_grpc.MatchingServicer):
    def __init__(self, node: Node) -> None:
        self._node = node

    def _check_list(self, list_id: str) -> None:
        if list_id and list_id != self._node.config.list_id:
            raise NotFoundError(f"no list '{list_id}' on this node; it serves '{self._node.config.list_id}'")

    def _refusal(self, context: grpc.ServicerContext, rpc: str, session: ServerSession | None = None,
                 requested: list[SessionStart] | None = None) -> Callable[[grpc.StatusCode, str], None]:
        """Audits a refusal, with what the partner asked for when a session start arrived."""
        def record(code: grpc.StatusCode, message: str) -> None:
            start = requested[-1] if requested else None
            self._node.audit.append(events.refused(peer_identity(context), rpc, code.name, message, start,
                                                   session.session_id if session else ""))
        return record

    def GetParameters(self, request: pb.GetParametersRequest, context: grpc.ServicerContext) -> pb.Parameters:
        with grpc_errors(context, self._refusal(context, "GetParameters")):
            self._check_list(request.list_id)
            return codec.parameters_to_pb(self._node.parameters())
        raise AssertionError("unreachable")

    def StreamTags(self, request: pb.StreamTagsRequest,
                   context: grpc.ServicerContext) -> Iterator[pb.TagChunk]:
        with grpc_errors(context, self._refusal(context, "StreamTags")):
            self._check_list(request.list_id)
            mode = codec.mode_from_pb(request.mode)
            snapshot = self._node.snapshot()
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
            self._node.audit.append(events.tags_served(peer_identity(context), mode, self._node.parameters(),
                                                       request.offset))
            chunk_size = self._node.config.limits.tag_chunk_size
            for chunk in snapshot.chunks(mode, request.offset, chunk_size):
                yield codec.tag_chunk_to_pb(chunk)

    def Evaluate(self, request_iterator: Iterator[pb.EvaluateRequest],
                 context: grpc.ServicerContext) -> Iterator[pb.EvaluateResponse]:
        params = self._node.parameters()
        session = ServerSession(self._node.key.secret, params, uuid.uuid4().hex)
        partner = peer_identity(context)
        requested: list[SessionStart] = []
        with grpc_errors(context, self._refusal(context, "Evaluate", session, requested)):
            for request in request_iterator:
                msg = codec.client_message_from_pb(request)
                if isinstance(msg, SessionStart):
                    requested.append(msg)
                    self._check_list(msg.list_id)
                    accepted = session.start(msg)
                    self._node.audit.append(events.query_served(partner, msg, params, session.session_id))
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
