"""Hand this node's audit checkpoint to a partner's Witness service and get its cosignature.

The caller (the CLI) builds the checkpoint and the proof from its log
(`agency.audit.witness`); this module only speaks the wire: it needs psi/
and psiwire/ like the rest of client/.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from client.api import ClientTls
from client.errors import remote_error
from psiwire import witness_pb2 as pb
from psiwire import witness_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class Cosignature:
    witness: str
    public_key: str
    timestamp: int
    signature: bytes


def add_checkpoint(target: str, tls: ClientTls, *, log_public_key: str, size: int, head: bytes, time: str,
                   signature: bytes, proof_from: int, proof: list[bytes],
                   server_name: str | None = None, timeout: float = 30.0) -> Cosignature | int:
    """The witness's cosignature, or (an int) the size it last cosigned when `proof_from` is not that size."""
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    with grpc.secure_channel(target, tls.credentials(), options=options) as channel:
        request = pb.AddCheckpointRequest(log_public_key=log_public_key, old_size=proof_from, size=size, head=head,
                                          time=time, signature=signature, proof=proof)
        try:
            reply = pb_grpc.WitnessStub(channel).AddCheckpoint(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
    if reply.HasField("known_size"):
        return int(reply.known_size)
    return Cosignature(reply.witness, reply.witness_public_key, reply.timestamp, reply.cosignature)
