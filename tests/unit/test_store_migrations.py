"""The versioned store: a store of the previous release migrated without loss, once; newer stores refused."""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agency.record_format import record_from_json
from psi.errors import ConfigurationError
from server import migrations
from server.followups import FollowUpDesk
from server.store import Store

FIXTURE = Path(__file__).parent.parent / "fixtures" / "store-v0"  # written by make_store_v0.py with f69338b
CURRENT = len(migrations.MIGRATIONS)
_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP)\b|user_version\s*=", re.IGNORECASE)


class NoAudit:
    def append(self, body: dict[str, Any]) -> None:
        pass


def _raw(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.fixture
def v0(tmp_path: Path) -> Path:
    """A copy of the previous release's store (and its key file, beside it as in a node's data dir)."""
    for name in ("watchlist.sqlite", "oprf.key"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    return tmp_path / "watchlist.sqlite"


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the connections opened during the test run."""
    seen: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.set_trace_callback(seen.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", traced)
    yield seen


_TABLES = ("meta", "records", "entries", "match_keys", "removed", "budgets", "requests", "settings", "followups")


def test_fixture_is_an_unversioned_store_of_the_previous_release() -> None:
    path = FIXTURE / "watchlist.sqlite"
    assert path.stat().st_size < 1_000_000
    assert _raw(path, "PRAGMA user_version") == [(0,)]
    assert ("entries_removed_v2",) in _raw(path, "SELECT name FROM sqlite_master WHERE type='trigger'")
    assert _raw(path, "SELECT COUNT(DISTINCT epoch) FROM budgets") == [(2,)]
    assert _raw(path, "SELECT COUNT(*) FROM removed")[0][0] > 0


def test_previous_release_store_survives_migration(v0: Path) -> None:
    before = {table: sorted(_raw(v0, f"SELECT * FROM {table}")) for table in _TABLES}
    store = Store(v0)
    try:
        assert store.query("PRAGMA user_version") == [(CURRENT,)]
        for table in set(_TABLES) - {"requests", "entries"}:
            assert sorted(store.query(f"SELECT * FROM {table}")) == before[table], table
        # Request ids keep their partner and id; their epoch is unknown (NULL). Entries lack label keys.
        for table in ("requests", "entries"):
            assert sorted(store.query(f"SELECT * FROM {table}")) == [(*row, None) for row in before[table]], table
        assert store.query("SELECT name FROM sqlite_master WHERE type='trigger'") == []
        assert store.key_epochs() == [] and store.current_key_epoch() is None  # filled from the key file by the caller

        records = store.records()
        assert [r.record_id for r in records] == sorted(row[0] for row in before["records"])
        assert records == sorted((record_from_json(data) for _, data in before["records"]), key=lambda r: r.record_id)
        assert store.list_version == 7 and store.record_count() == 38
        assert store.budget_used("agency-a", 1) == 120 and store.budget_used("agency-b", 2) == 7
        assert store.setting("policy_hash") == "f" * 64

        followups = {f.followup_id: f for f in FollowUpDesk(store, NoAudit(), Path()).all()}  # type: ignore[arg-type]
        assert followups["fu00000000000000"].status == "pending"
        decided = followups["fu00000000000001"]
        assert (decided.status, decided.decided_by) == ("approved", "Officer Ben")
        assert set(decided.fields) == {"name", "birth_date"}
        assert json.loads(dict((r[0], r[-1]) for r in before["followups"])["fu00000000000001"]) == decided.fields

        # The migrated store works as a current one: an erasure is a delta of exactly its entries.
        gone = store.query("SELECT tag_material FROM entries WHERE record_id=?", (records[0].record_id,))
        assert store.erase([records[0].record_id]) == [records[0].record_id]
        _, _, added, removed = store.changes(2, 7)
        assert added == [] and sorted(r[0] for r in removed) == sorted(g[0] for g in gone)
    finally:
        store.close()


def test_second_open_runs_no_ddl(v0: Path, statements: list[str]) -> None:
    Store(v0).close()
    assert any(_DDL.search(s) for s in statements)  # the first open migrated
    schema = _raw(v0, "PRAGMA schema_version")
    statements.clear()
    store = Store(v0)
    try:
        assert store.query("PRAGMA user_version") == [(CURRENT,)]
    finally:
        store.close()
    assert [s for s in statements if _DDL.search(s)] == []
    assert _raw(v0, "PRAGMA schema_version") == schema


def _columns(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    tables = [t for (t,) in store.query("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    return {t: [c[1:] for c in store.query(f"PRAGMA table_info({t})")] for t in tables}


def test_new_store_has_the_schema_of_a_migrated_one(v0: Path, tmp_path: Path) -> None:
    new, old = Store(tmp_path / "new" / "watchlist.sqlite"), Store(v0)
    try:
        assert new.query("PRAGMA user_version") == [(CURRENT,)]
        assert new.list_version == 0 and new.record_count() == 0 and new.records() == []
        assert _columns(new) == _columns(old)
        indexes = "SELECT name, tbl_name FROM sqlite_master WHERE type='index' ORDER BY name"
        assert new.query(indexes) == old.query(indexes)
    finally:
        new.close()
        old.close()


def test_older_store_without_version_columns_is_migrated(tmp_path: Path) -> None:
    """A store from before the removal log knew when an entry was added (and its trigger)."""
    path = tmp_path / "watchlist.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE records (record_id TEXT PRIMARY KEY, data TEXT NOT NULL);
        CREATE TABLE entries (record_id TEXT NOT NULL REFERENCES records(record_id) ON DELETE CASCADE,
            epoch INTEGER NOT NULL, rule_id TEXT NOT NULL, tag_material BLOB NOT NULL,
            cardinality_material BLOB NOT NULL, sealed_label BLOB NOT NULL);
        CREATE TABLE removed (epoch INTEGER NOT NULL, version INTEGER NOT NULL, tag_material BLOB NOT NULL,
            cardinality_material BLOB NOT NULL, sealed_label BLOB NOT NULL);
        CREATE TRIGGER entries_removed AFTER DELETE ON entries BEGIN
            INSERT INTO removed VALUES (old.epoch, (SELECT value FROM meta WHERE name='list_version') + 1,
                                        old.tag_material, old.cardinality_material, old.sealed_label);
        END;
        INSERT INTO meta VALUES ('list_version', 3);
        INSERT INTO records VALUES ('r1', '{}');
        INSERT INTO entries VALUES ('r1', 1, 'doc', x'01', x'02', x'03');
        INSERT INTO removed VALUES (1, 2, x'04', x'05', x'06');
    """)
    db.close()
    store = Store(path)
    try:
        assert store.query("SELECT * FROM entries") == [("r1", 1, "doc", b"\x01", b"\x02", b"\x03", 0, None)]
        assert store.query("SELECT * FROM removed") == [(1, 2, b"\x04", b"\x05", b"\x06", 0)]
        assert store.query("SELECT name FROM sqlite_master WHERE type='trigger'") == []
        assert store.list_version == 3 and store.query("PRAGMA user_version") == [(CURRENT,)]
    finally:
        store.close()


def test_newer_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={CURRENT + 1}")
    db.close()
    with pytest.raises(ConfigurationError, match="upgrade the software"):
        Store(path)


def test_a_failing_migration_changes_nothing(v0: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration failed")

    Store(v0).close()
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    with pytest.raises(RuntimeError, match="migration failed"):
        Store(v0)
    assert _raw(v0, "PRAGMA user_version") == [(CURRENT,)]
    assert _raw(v0, "SELECT name FROM sqlite_master WHERE name='half_done'") == []


def _open_and_count(path: str) -> int:
    store = Store(Path(path))
    try:
        return store.record_count()
    finally:
        store.close()


def test_processes_opening_an_old_store_at_once_migrate_it_once(v0: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        counts = pool.map(_open_and_count, [str(v0)] * 8)
    assert counts == [38] * 8
    assert _raw(v0, "PRAGMA user_version") == [(CURRENT,)]
    assert _raw(v0, "SELECT COUNT(*) FROM pragma_table_info('requests') WHERE name='epoch'") == [(1,)]
