"""The node's prepared bulk list (`server.node.Node.bulk_list`): built at start only for bulk partners,
shared by sessions, built again once the list or the key epoch moved on, and one build at a time.
Builds are counted through the seam the node calls for each, `server.bulk.prepare_list`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from client.api import MatchClient
from server import bulk
from server.rotation import rotate_key
from server.store import BulkInputs
from server.watchlist import import_records
from tests.conftest import LiveNode, tls_for
from tests.integration.test_bulk import LISTS, agreements

FIRST, LATER = LISTS.b[:40], LISTS.b[40:]


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The key epoch of each bulk list the node builds, in order."""
    made: list[int] = []
    real = bulk.prepare_list

    def counting(key_epoch: int, inputs: BulkInputs) -> bulk.PreparedList:
        made.append(key_epoch)
        return real(key_epoch, inputs)

    monkeypatch.setattr(bulk, "prepare_list", counting)
    return made


def hits(live: LiveNode, pki_dir: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(bulk hits, intersection-mode hits) of LISTS.a against the node, as (record, reference)."""
    with MatchClient(live.target, tls_for(pki_dir, "agency-a"), partner="agency-b", timeout=60) as client:
        got = client.bulk_match(LISTS.a, purpose="p", case_reference="c").hits
        plain = client.match(LISTS.a, purpose="p", case_reference="c").hits
    return {(h.record_id, h.reference) for h in got}, {(h.record_id, h.reference) for h in plain}


def test_a_node_without_bulk_partners_builds_no_list(start_node: Callable[..., LiveNode], builds: list[int]) -> None:
    live = start_node(LISTS.b)  # the default agreements: intersection and cardinality
    assert not live.node.offers_bulk and builds == []


def test_sessions_see_a_list_import_and_a_key_rotation(start_node: Callable[..., LiveNode], pki_dir: Path,
                                                      builds: list[int]) -> None:
    later = {r.record_id for r in LATER}
    assert any(b in later for _, b in LISTS.overlap), "the later records add hits"
    live = start_node(FIRST, partners=(), extra=agreements())
    assert builds == [1]  # at start
    first, plain = hits(live, pki_dir)
    assert first == plain and first and hits(live, pki_dir)[0] == first
    assert builds == [1]  # both sessions used the list built at start

    import_records(live.config, LATER, "test-operator")  # as another process does, beside the running node
    grown, plain = hits(live, pki_dir)
    assert grown == plain and grown > first and builds == [1, 1]

    assert rotate_key(live.config, "admin-1").new_epoch == 2
    rotated, plain = hits(live, pki_dir)
    assert rotated == plain == grown and builds == [1, 1, 2]


def test_concurrent_sessions_wait_for_one_build(start_node: Callable[..., LiveNode],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    live = start_node(FIRST, partners=(), extra=agreements())
    import_records(live.config, LATER, "test-operator")  # the node's list is stale now
    entered, release = threading.Event(), threading.Event()
    made: list[int] = []
    real = bulk.prepare_list

    def held(key_epoch: int, inputs: BulkInputs) -> bulk.PreparedList:
        made.append(key_epoch)
        entered.set()
        release.wait(60)
        return real(key_epoch, inputs)

    monkeypatch.setattr(bulk, "prepare_list", held)
    key = live.node.key
    got: list[bulk.PreparedList] = []
    sessions = [threading.Thread(target=lambda: got.append(live.node.bulk_list(key))) for _ in range(2)]
    sessions[0].start()
    assert entered.wait(60)
    sessions[1].start()
    sessions[1].join(0.2)
    assert sessions[1].is_alive()  # waiting for the build under way, not starting its own
    assert live.node.parameters().list_version == live.node.store.list_version  # other requests do not wait
    release.set()
    for session in sessions:
        session.join(60)
    assert made == [1] and len(got) == 2 and got[0] is got[1] is live.node.bulk_list(key)
    latest = live.node.store.bulk_inputs(1)
    assert (got[0].list_version, got[0].entries) == (latest.list_version, len(latest.keys))
