"""Hand-made protocol messages and refusals, for tests that speak to a live node without the client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import rbcl

from psi.profiles import Profile
from psiwire import matching_pb2 as pb

FINISH = pb.EvaluateRequest(finish=pb.Finish())


def start(profile: Profile, total: int = 1, **changes: object) -> pb.EvaluateRequest:
    """A valid session start for epoch 1 of the node's list, with `changes` applied."""
    fields = {"list_id": "wanted-persons", "mode": pb.MODE_INTERSECTION, "key_epoch": 1,
              "profile_id": profile.profile_id, "profile_hash": profile.definition_hash,
              "total_elements": total, "purpose": "test purpose", "case_reference": "T-1",
              "request_id": uuid.uuid4().hex} | changes
    return pb.EvaluateRequest(start=pb.SessionStart(**fields))  # type: ignore[arg-type]


def random_batch(index: int, count: int = 1) -> pb.EvaluateRequest:
    elements = b"".join(rbcl.crypto_core_ristretto255_random() for _ in range(count))
    return pb.EvaluateRequest(batch=pb.BlindedBatch(index=index, elements=elements))


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """The status and message with which `call` was refused."""
    with pytest.raises(grpc.RpcError) as failed:
        call()
    return failed.value.code(), failed.value.details() or ""


def audit_bodies(log: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return [line["body"] for line in lines if line["kind"] == "entry"]


class AuditSink:
    """A client AuditSink that keeps the bodies (the CLI passes the node's signed log)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def append(self, body: dict[str, Any]) -> int:
        self.bodies.append(body)
        return len(self.bodies)
