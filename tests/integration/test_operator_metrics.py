"""Issue 16: the metrics endpoint, scraped over HTTP on 127.0.0.1 while a node answers partners."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from client.api import MatchClient
from demo.synthetic import make_lists
from psi.errors import BudgetExceededError
from server.app import create_server
from server.metrics import Metrics, MetricsEndpoint
from tests.conftest import LiveNode, tls_for

LISTS = make_lists(40, 60, overlap=10, seed=16)
BUDGET = 80  # blinded elements per epoch for agency-a: one match of LISTS.a fits, a second does not
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@contextmanager
def _serving(live: LiveNode) -> Iterator[tuple[str, int]]:
    """The node behind a server and a metrics endpoint, as `psi serve` runs them; (target, metrics port)."""
    metrics = Metrics(live.node)
    server, port = create_server(live.node, "127.0.0.1:0", max_workers=4, metrics=metrics)
    server.start()
    endpoint = MetricsEndpoint(metrics, f"127.0.0.1:{_free_port()}")
    try:
        yield f"127.0.0.1:{port}", endpoint.port
    finally:
        endpoint.close()
        server.stop(grace=None).wait()


def test_the_metrics_endpoint_reports_what_the_node_did(start_node: Callable[..., LiveNode], pki_dir: Path) -> None:
    extra = f'\n[partners.agency-a]\nlists = ["wanted-persons"]\nbudget_per_epoch = {BUDGET}\n'
    live = start_node(LISTS.b, partners=(), extra=extra)
    with _serving(live) as (target, metrics_port), \
            MatchClient(target, tls_for(pki_dir, "agency-a"), timeout=60) as client:
        before = _scrape(metrics_port)
        assert before[("psi_serving", ())] == 1
        assert before[("psi_key_epoch", ())] == 1
        assert before[("psi_budget_left_elements", (("partner", "agency-a"),))] == BUDGET
        result = client.match(LISTS.a, purpose="p", case_reference="c")
        assert result.keys <= BUDGET < 2 * result.keys
        with pytest.raises(BudgetExceededError):
            client.match(LISTS.a, purpose="p", case_reference="c")
        live.node.audit.checkpoint()
        after = _scrape(metrics_port)
    agency_a = (("partner", "agency-a"),)
    assert after[("psi_queries_total", (("mode", "intersection"), ("partner", "agency-a")))] == 1
    assert after[("psi_elements_evaluated_total", agency_a)] == result.keys
    assert after[("psi_budget_left_elements", agency_a)] == BUDGET - result.keys
    assert after[("psi_tag_stream_bytes_total", agency_a)] > 0
    assert after[("psi_refusals_total", (("code", "RESOURCE_EXHAUSTED"), ("method", "Evaluate")))] == 1
    assert after[("psi_call_seconds_count", (("method", "Evaluate"),))] == 2
    assert after[("psi_call_seconds_count", (("method", "GetParameters"),))] >= 1
    assert after[("psi_audit_checkpoint_age_seconds", ())] >= 0


def test_metrics_are_off_unless_configured(start_node: Callable[..., LiveNode]) -> None:
    assert start_node(LISTS.b).config.metrics_listen is None
