"""Store operations: op ids committed with their change, request ids per epoch, key epochs, deltas, decisions."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agency.keys import ServerKey
from agency.record_format import record_from_json, record_to_json
from psi import oprf
from psi.errors import ConfigurationError, OutOfOrderError, ReplayError
from psi.profiles import EXACT_PROFILE
from psi.records import IdentityDocument, PartialDate, Record
from server import store as store_module
from server.followups import DECIDE_OPERATION, FollowUpDesk
from server.store import ERASE_OPERATION, IMPORT_OPERATION, Store, Upserted

KEY = ServerKey(1, oprf.generate_key())


def person(n: int, name: str = "") -> Record:
    return Record(f"r{n:03d}", name or f"Person Number{n}", PartialDate(1970 + n % 30, 1 + n % 12, 1 + n % 28),
                  "DEU", (IdentityDocument("PASSPORT", f"P{n:07d}", "DEU"),), reference=f"REF-{n}",
                  category="arrest")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "watchlist.sqlite")
    yield opened
    opened.close()


class InjectedError(Exception):
    pass


def fail(*_: object) -> None:
    raise InjectedError


def test_op_id_commits_with_the_change(store: Store) -> None:
    assert store.upsert([person(1), person(2)], KEY, EXACT_PROFILE, op_id="op-import") == Upserted(4, 2, 0)
    assert store.upsert([person(2), person(3)], KEY, EXACT_PROFILE) == Upserted(2, 1, 0, 1)  # person 2 as stored
    assert store.erase(["r001"], op_id="op-erase") == ["r001"]
    assert store.committed("op-import") and store.committed("op-erase") and not store.committed("op-other")
    assert store.query("SELECT op_id, kind FROM operations ORDER BY op_id") == [
        ("op-erase", ERASE_OPERATION), ("op-import", IMPORT_OPERATION)]


def test_a_failed_change_leaves_no_op_row(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.upsert([person(1)], KEY, EXACT_PROFILE)
    version = store.list_version
    monkeypatch.setattr(store_module, "crash_point", fail)  # fails where a crash test kills: before COMMIT
    with pytest.raises(InjectedError):
        store.upsert([person(2)], KEY, EXACT_PROFILE, op_id="op-import")
    with pytest.raises(InjectedError):
        store.erase(["r001"], op_id="op-erase")
    with pytest.raises(InjectedError), store.transaction() as db:
        store.mark_operation(db, "op-own", "custom")
        fail()
    assert not any(store.committed(op) for op in ("op-import", "op-erase", "op-own"))
    assert store.list_version == version and [r.record_id for r in store.records()] == ["r001"]


def test_an_op_id_is_done_once(store: Store) -> None:
    store.upsert([person(1)], KEY, EXACT_PROFILE, op_id="op-1")
    with pytest.raises(OutOfOrderError, match="op-1"):
        store.erase(["r001"], op_id="op-1")
    assert [r.record_id for r in store.records()] == ["r001"]  # the erasure rolled back with it


def test_request_ids_are_pruned_by_epoch(store: Store) -> None:
    for epoch in (1, 2, 3):
        store.remember_request("agency-a", f"id-{epoch}", epoch)
    with pytest.raises(ReplayError):
        store.remember_request("agency-a", "id-2", 3)
    store.prune_requests(3)
    assert store.query("SELECT request_id, epoch FROM requests") == [("id-3", 3)]
    store.remember_request("agency-a", "id-1", 3)  # a past epoch's id is bound to that epoch's key
    with pytest.raises(ReplayError):
        store.remember_request("agency-a", "id-3", 3)


def test_request_ids_of_unknown_epoch_go_once_a_later_epoch_is_kept(store: Store) -> None:
    with store.transaction() as db:  # as a store of the previous release has them
        db.execute("INSERT INTO requests (partner, request_id) VALUES ('agency-a', 'legacy')")
    store.prune_requests(5)
    assert store.query("SELECT request_id FROM requests") == [("legacy",)]  # no epoch known yet: kept
    store.record_key_epoch(None, 4, "aa" * 32)  # the key the store was found with
    store.prune_requests(4)
    assert store.query("SELECT request_id FROM requests") == [("legacy",)]  # may be of epoch 4
    store.prune_requests(5)
    assert store.query("SELECT request_id FROM requests") == []


def test_drop_other_epochs_prunes_request_ids(store: Store) -> None:
    store.upsert([person(1)], KEY, EXACT_PROFILE)
    store.remember_request("agency-a", "old", 1)
    new = ServerKey(2, oprf.generate_key())
    store.fill_epoch(new, EXACT_PROFILE)
    store.remember_request("agency-a", "new", 2)
    store.drop_other_epochs(2)
    assert store.query("SELECT request_id FROM requests") == [("new",)]


def test_remember_request_joins_the_callers_transaction(store: Store) -> None:
    with pytest.raises(InjectedError), store.transaction() as db:
        store.remember_request("agency-a", "id-1", 1, db=db)
        assert store.budget_used("agency-a", 1, db=db) == 0
        fail()
    store.remember_request("agency-a", "id-1", 1)  # the failed transaction kept nothing


def test_key_epochs(store: Store) -> None:
    assert store.current_key_epoch() is None and store.key_epochs() == []
    store.record_key_epoch(None, 1, "aa" * 32)
    with store.transaction() as db:
        store.record_key_epoch(db, 2, "bb" * 32)
    store.record_key_epoch(None, 2, "bb" * 32)  # the same key again: nothing changes
    assert store.key_epochs() == [(1, "aa" * 32), (2, "bb" * 32)]
    assert store.current_key_epoch() == (2, "bb" * 32)
    with pytest.raises(ConfigurationError, match="key epoch 2"):
        store.record_key_epoch(None, 2, "cc" * 32)
    with pytest.raises(InjectedError), store.transaction() as db:
        store.record_key_epoch(db, 3, "dd" * 32)
        fail()
    assert store.current_key_epoch() == (2, "bb" * 32)


Entry = tuple[bytes, bytes, bytes]


def held(store: Store, epoch: int) -> Counter[Entry]:
    _, materials, labels, cmaterials = store.entries(epoch)
    return Counter(zip(materials, labels, cmaterials, strict=True))


def test_deltas_take_every_holder_to_the_current_list(store: Store) -> None:
    """Whatever version a partner holds, (held - removed) + added is the current list, removed is what it held."""
    states: dict[int, Counter[Entry]] = {0: Counter()}

    def snapshot() -> None:
        states[store.list_version] = held(store, 1)

    store.upsert([person(n) for n in range(1, 6)], KEY, EXACT_PROFILE)
    snapshot()
    store.upsert([person(n) for n in range(6, 9)], KEY, EXACT_PROFILE)
    snapshot()
    store.erase(["r002", "r007"])
    snapshot()
    store.upsert([person(6, "Another Name"), person(3)], KEY, EXACT_PROFILE)  # one changed, one the same again
    snapshot()
    store.erase(["r006"])  # added at version 4: a holder of 3 or earlier never had that entry
    snapshot()
    current = held(store, 1)
    for since, had in states.items():
        version, total, added, removed = store.changes(1, since)
        assert version == store.list_version and total == sum(current.values())
        assert not Counter(removed) - had, since  # only what the holder had
        assert had - Counter(removed) + Counter(added) == current, since


def test_dropping_another_epoch_logs_no_removals(store: Store) -> None:
    store.upsert([person(n) for n in range(1, 4)], KEY, EXACT_PROFILE)
    store.erase(["r001"])
    logged = store.query("SELECT COUNT(*) FROM removed WHERE epoch=1")[0][0]
    assert logged == 2  # r001's document and name keys
    new = ServerKey(2, oprf.generate_key())
    store.fill_epoch(new, EXACT_PROFILE)
    store.upsert([person(2, "Renamed Person")], new, EXACT_PROFILE)  # removals in both epochs while both exist
    store.clear_epoch(3)  # nothing there: no change
    version = store.list_version
    store.drop_other_epochs(2)
    assert store.list_version == version + 1
    assert store.query("SELECT DISTINCT epoch FROM removed") == [(2,)]
    assert store.query("SELECT COUNT(*) FROM entries WHERE epoch<>2") == [(0,)]
    _, _, added, removed = store.changes(2, version)
    assert added == [] and removed == []  # the drop is no change of epoch 2's list


def test_records_are_stored_with_their_format_version(store: Store) -> None:
    store.upsert([person(1)], KEY, EXACT_PROFILE)
    assert json.loads(store.query("SELECT data FROM records")[0][0])["v"] == 1
    doc = json.loads(record_to_json(person(2)))
    del doc["v"]  # as the previous release wrote it
    assert record_from_json(json.dumps(doc)) == person(2)
    with pytest.raises(ConfigurationError, match="format version 2"):
        record_from_json(json.dumps({**doc, "v": 2}))


class GatedAudit:
    """Holds each decision until both have been checked as pending, so that both reach the update."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self._barrier = barrier
        self.outcomes: dict[str, str] = {}

    def intent(self, body: dict[str, Any], *, op_id: str) -> str:
        self._barrier.wait(timeout=30)  # both officers have checked the request is pending
        return op_id

    def outcome(self, op_id: str, body: dict[str, Any], *, outcome: str = "ok") -> None:
        self.outcomes[op_id] = outcome


def _pending_followup(store: Store) -> str:
    with store.transaction() as db:
        db.execute("INSERT INTO followups (id, partner, reference, record_id, purpose, case_reference, officer, "
                   "message, request_id, created, deadline, status) VALUES ('fu1', 'agency-a', 'REF-1', 'r001', "
                   "'check', 'CASE-1', 'Officer A', '', 'req-1', '2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z', "
                   "'pending')")
    return "fu1"


@pytest.mark.parametrize("connections", ["one store", "a store each"])
def test_concurrent_decisions_have_one_winner(store: Store, tmp_path: Path, connections: str) -> None:
    store.upsert([person(1)], KEY, EXACT_PROFILE)
    followup_id = _pending_followup(store)
    barrier = threading.Barrier(2)
    stores = [store, store] if connections == "one store" else [Store(tmp_path / "watchlist.sqlite") for _ in "ab"]
    audit = GatedAudit(barrier)
    desks = [FollowUpDesk(s, audit, tmp_path) for s in stores]  # type: ignore[arg-type]
    outcomes: dict[str, str] = {}

    def decide(n: int) -> None:
        officer = f"Officer {n}"
        try:
            if n == 0:
                desks[n].decide(followup_id, officer, approve_fields=["name"])
            else:
                desks[n].decide(followup_id, officer, reason="not needed")
            outcomes[officer] = "won"
        except OutOfOrderError as exc:
            outcomes[officer] = str(exc)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        winner = next(officer for officer, outcome in outcomes.items() if outcome == "won")
        loser = next(officer for officer in outcomes if officer != winner)
        item = desks[0].get(followup_id)
        assert item.decided_by == winner and item.status in ("approved", "denied")
        assert f"was already {item.status} by {winner}" in outcomes[loser]
        assert sorted(audit.outcomes.values()) == ["aborted", "ok"]  # the loser's intent is settled too
        assert [store.committed(op) for op in audit.outcomes].count(True) == 1
        assert store.query("SELECT kind FROM operations") == [(DECIDE_OPERATION,)]
    finally:
        for opened in stores if connections == "a store each" else []:
            opened.close()


def test_followups_are_read_by_column_name(store: Store) -> None:
    followup_id = _pending_followup(store)
    with store.transaction() as db:  # a column order other than the dataclass's
        db.execute("ALTER TABLE followups RENAME TO followups_old")
        db.execute("CREATE TABLE followups AS SELECT fields, status, reason, decided_at, decided_by, deadline, "
                   "created, request_id, message, officer, case_reference, purpose, record_id, reference, partner, "
                   "id FROM followups_old")
    item = FollowUpDesk(store, GatedAudit(threading.Barrier(1)), Path()).get(followup_id)  # type: ignore[arg-type]
    assert (item.followup_id, item.partner, item.officer, item.status, item.fields) == (
        "fu1", "agency-a", "Officer A", "pending", {})
    assert isinstance(store.query_rows("SELECT id FROM followups")[0], sqlite3.Row)
