"""Server reflection answers under grpc.reflection.v1 (what current tools ask first) and v1alpha."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from tests.conftest import LiveNode, tls_for

# v1 and v1alpha messages are identical on the wire; only the method path differs.
PATHS = ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
         "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")


@pytest.mark.parametrize("path", PATHS, ids=("v1", "v1alpha"))
def test_reflection_lists_and_describes_the_services(path: str, start_node: Callable[..., LiveNode],
                                                     pki_dir: Path) -> None:
    live = start_node([])
    with grpc.secure_channel(live.target, tls_for(pki_dir, "agency-a").credentials()) as channel:
        call = channel.stream_stream(path, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        listed, matching, v1 = call(iter([
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="psi.v1.Matching"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
        ]), timeout=30)
    names = {s.name for s in listed.list_services_response.service}
    assert {"psi.v1.Matching", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= names
    for reply, package in ((matching, "psi.v1"), (v1, "grpc.reflection.v1")):
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in reply.file_descriptor_response.file_descriptor_proto]
        assert package in {f.package for f in files}
