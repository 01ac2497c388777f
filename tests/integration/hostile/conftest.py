"""A live node for the hostile suite, hand-made messages, and certificates no honest CA would issue.

The suite is organised by threat, one module each: identity, resources, state machine,
injection, storage (docs/threat-model.md maps every threat to its tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from cli.pki import issue_certificate
from client.api import ClientTls
from demo.synthetic import make_lists
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from tests.conftest import LiveNode, tls_for
from tests.integration import raw_calls

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
FINISH = raw_calls.FINISH


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
        return raw_calls.start(self.live.config.profile, total, **{"purpose": "hostile test",
                                                                   "case_reference": "H-1", **changes})

    def audit_bodies(self) -> list[dict[str, object]]:
        return raw_calls.audit_bodies(self.live.config.audit_log_path)


batch = raw_calls.random_batch
refusal = raw_calls.refusal


@pytest.fixture
def hostile(start_node: Callable[..., LiveNode], hostile_pki: Path) -> Hostile:
    return Hostile(start_node(LISTS.b, partners=(), extra=AGREEMENTS), hostile_pki)
