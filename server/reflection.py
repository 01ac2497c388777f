"""Server reflection under both names clients use: `grpc.reflection.v1` and `grpc.reflection.v1alpha`.

grpcio-reflection ships only v1alpha. The v1 service is the same protocol under a new package
name (identical messages and field numbers), so one servicer answers both, and the v1 file
descriptor, derived from v1alpha's by renaming the package, is added to the default pool so
that v1 clients can describe the reflection service itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2 as alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as alpha_grpc
from grpc_reflection.v1alpha.reflection import SERVICE_NAME as ALPHA_SERVICE_NAME
from grpc_reflection.v1alpha.reflection import ReflectionServicer

_ALPHA_PACKAGE = "grpc.reflection.v1alpha"
_V1_PACKAGE = "grpc.reflection.v1"
_V1_FILE = "grpc/reflection/v1/reflection.proto"
SERVICE_NAME = f"{_V1_PACKAGE}.ServerReflection"


def _register_v1_descriptor() -> None:
    """Add grpc/reflection/v1/reflection.proto to the default pool, once."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = _V1_FILE, _V1_PACKAGE
    proto.options.Clear()  # v1alpha's options name its own Java and C# packages
    for message in proto.message_type:
        for f in message.field:
            if f.HasField("type_name"):  # set on message fields only; an empty one is an error
                f.type_name = f.type_name.replace(f".{_ALPHA_PACKAGE}.", f".{_V1_PACKAGE}.")
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(f".{_ALPHA_PACKAGE}.", f".{_V1_PACKAGE}.")
        method.output_type = method.output_type.replace(f".{_ALPHA_PACKAGE}.", f".{_V1_PACKAGE}.")
    pool.AddSerializedFile(proto.SerializeToString())


def enable_server_reflection(service_names: Iterable[str], server: grpc.Server) -> None:
    """Serve reflection for `service_names` (and both reflection services) under v1 and v1alpha."""
    _register_v1_descriptor()
    names = tuple(dict.fromkeys((*service_names, SERVICE_NAME, ALPHA_SERVICE_NAME)))
    servicer = ReflectionServicer(names)
    alpha_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=alpha_pb2.ServerReflectionRequest.FromString,
            response_serializer=alpha_pb2.ServerReflectionResponse.SerializeToString,
        ),
    })
    server.add_generic_rpc_handlers((v1,))
