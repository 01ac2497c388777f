"""20 partners' systems querying at once: every result correct, no request fails (bounded, loopback)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from client.api import MatchClient
from demo.synthetic import make_lists
from psi.messages import Mode
from tests.conftest import LiveNode, tls_for

LISTS = make_lists(150, 120, 30, seed=51)
REFS = {r.record_id: r.reference for r in LISTS.b}
BUSY_PARTNER = """
[partners.agency-a]
lists = ["wanted-persons"]
modes = ["intersection", "cardinality"]
rate_per_minute = 100000
max_sessions = 64
budget_per_epoch = 100000000
"""
CLIENTS, QUERIES = 20, 3


def test_twenty_concurrent_clients(start_node: Callable[..., LiveNode], pki_dir: Path) -> None:
    live = start_node(LISTS.b, extra=BUSY_PARTNER, partners=())
    expected = {(a, REFS[b]) for a, b in LISTS.overlap}

    def one_client(n: int) -> list[bool]:
        outcomes = []
        with MatchClient(live.target, tls_for(pki_dir, "agency-a"), timeout=120) as client:
            for q in range(QUERIES):
                mode = Mode.CARDINALITY if (n + q) % 3 == 0 else Mode.INTERSECTION
                result = client.match(LISTS.a, purpose="load test", case_reference=f"LOAD-{n}-{q}", mode=mode)
                if mode is Mode.INTERSECTION:
                    outcomes.append({(h.record_id, h.reference) for h in result.hits} == expected)
                else:
                    outcomes.append(result.hit_records == len(expected))
        return outcomes

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = [f.result(timeout=300) for f in [pool.submit(one_client, n) for n in range(CLIENTS)]]
    assert [len(r) for r in results] == [QUERIES] * CLIENTS
    assert all(all(r) for r in results)
