"""A live node for the hostile suite, hand-made messages, and certificates no honest CA would issue.

The suite is organised by threat, one module each: identity, resources, state machine,
injection, storage (docs/threat-model.md maps every threat to its tests).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import rbcl

from cli.pki import issue_certificate
from client.api import ClientTls
from demo.synthetic import make_lists
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from tests.conftest import LiveNode, tls_for

LISTS = make_lists(80, 60, 15, seed=71)
AGREEMENTS = """
[partners.agency-a]
lists = ["wanted-persons"]
modes = ["intersection", "cardinality"]
rate_per_minute = 600

[partners.eager]
lists = ["wanted-persons"]
modes = ["intersection"]
rate_per_minute = 3
"""
Code = grpc.StatusCode
FINISH = pb.EvaluateRequest(finish=pb.Finish())


@pytest.fixture(scope="session")
def hostile_pki(pki_dir: Path) -> Path:
    """The shared CA issues, besides the honest certificates: hostile subjects and a second agency-a."""
    issue_certificate(pki_dir, "nul-cn", common_names=("agency-a\0anything",))
    issue_certificate(pki_dir, "two-cn", common_names=("agency-a", "intruder"))
    issue_certificate(pki_dir, "agency-a-second", common_names=("agency-a",))
    return pki_dir


@dataclass
class Hostile:
    live: LiveNode
    pki: Path

    def stub(self, who: str = "agency-a") -> pb_grpc.MatchingStub:
        return pb_grpc.MatchingStub(grpc.secure_channel(self.live.target, tls_for(self.pki, who).credentials()))

    def tls(self, who: str = "agency-a") -> ClientTls:
        return tls_for(self.pki, who)

    def start(self, total: int = 1, **changes: object) -> pb.EvaluateRequest:
        profile = self.live.config.profile
        fields = {"list_id": "wanted-persons", "mode": pb.MODE_INTERSECTION, "key_epoch": 1,
                  "profile_id": profile.profile_id, "profile_hash": profile.definition_hash,
                  "total_elements": total, "purpose": "hostile test", "case_reference": "H-1",
                  "request_id": uuid.uuid4().hex} | changes
        return pb.EvaluateRequest(start=pb.SessionStart(**fields))  # type: ignore[arg-type]

    def audit_bodies(self) -> list[dict[str, object]]:
        lines = [json.loads(line) for line in self.live.config.audit_log_path.read_text().splitlines()]
        return [line["body"] for line in lines if line["kind"] == "entry"]


def batch(index: int, count: int = 1) -> pb.EvaluateRequest:
    elements = b"".join(rbcl.crypto_core_ristretto255_random() for _ in range(count))
    return pb.EvaluateRequest(batch=pb.BlindedBatch(index=index, elements=elements))


def refusal(call: Callable[[], object]) -> tuple[Code, str]:
    with pytest.raises(grpc.RpcError) as failed:
        call()
    return failed.value.code(), failed.value.details() or ""


@pytest.fixture
def hostile(start_node: Callable[..., LiveNode], hostile_pki: Path) -> Hostile:
    return Hostile(start_node(LISTS.b, partners=(), extra=AGREEMENTS), hostile_pki)
