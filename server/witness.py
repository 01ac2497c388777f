"""The Witness gRPC service: cosign a partner's audit checkpoints (agency/audit/witness.py).

Only partners with an agreement are witnessed, under the name their
certificate carries. A refused hand-over that points at tampering (a
rollback, a fork, a changed key, a bad signature) is logged in this node's
own audit log: it is the evidence a witness exists to keep.
"""

from __future__ import annotations

import grpc

from agency.audit.log import utc_now
from agency.audit.witness import Checkpoint, ConflictError, cosign
from agency.config import audit_signer
from psi.errors import AuditError, InputError, UnauthenticatedError
from psiwire import witness_pb2 as pb
from psiwire import witness_pb2_grpc as pb_grpc
from server.node import Node
from server.service import peer_identity

_DIGEST = 32


class WitnessService(pb_grpc.WitnessServicer):
    def __init__(self, node: Node) -> None:
        self._node = node
        self._signer = audit_signer(node.config)

    def AddCheckpoint(self, request: pb.AddCheckpointRequest,  # noqa: N802 (gRPC method name)
                      context: grpc.ServicerContext) -> pb.AddCheckpointResponse:
        config = self._node.config
        try:
            origin = peer_identity(context).name
        except UnauthenticatedError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if origin not in config.agreements:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{origin} is not a partner of {config.node_id}")
        if len(request.head) != _DIGEST or any(len(d) != _DIGEST for d in request.proof) \
                or request.old_size > request.size:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed checkpoint or proof")
        checkpoint = Checkpoint(request.size, request.head, request.time, request.signature.hex())
        try:
            bundle = cosign(config.data_dir, config.node_id, self._signer, origin, request.log_public_key, checkpoint,
                            request.old_size, list(request.proof), utc_now)
        except ConflictError as conflict:
            return pb.AddCheckpointResponse(known_size=conflict.known_size)
        except (InputError, ValueError) as exc:
            self._node.audit.append({"operation": "witness.refused", "role": "witness", "partner": origin,
                                     "count": request.size, "outcome": "refused", "status": "FAILED_PRECONDITION",
                                     "message": str(exc)[:300]})
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except AuditError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        cosignature = bundle["cosignature"]
        self._node.audit.append({"operation": "witness.cosigned", "role": "witness", "partner": origin,
                                 "count": request.size, "head": request.head.hex(), "outcome": "ok", "status": "OK"})
        return pb.AddCheckpointResponse(witness=config.node_id, witness_public_key=cosignature["key"],
                                        timestamp=cosignature["time"],
                                        cosignature=bytes.fromhex(cosignature["signature"]))
