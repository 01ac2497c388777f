"""The node's list in SQLite (WAL): records, and their per-epoch tag material.

An import is all or nothing: its tag material is computed before the one
transaction that writes records and entries and bumps the list version.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from psi import tags
from psi.profiles import Profile
from psi.records import IdentityDocument, PartialDate, Record
from psi.tags import ServerEntry
from server.keys import ServerKey

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    record_id TEXT NOT NULL REFERENCES records(record_id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    tag_material BLOB NOT NULL,
    cardinality_material BLOB NOT NULL,
    sealed_label BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_record ON entries(record_id, epoch);
CREATE INDEX IF NOT EXISTS entries_by_epoch ON entries(epoch);
INSERT OR IGNORE INTO meta VALUES ('list_version', 0);
"""

Progress = Callable[[int, int], None]
# Called inside the transaction, just before COMMIT, with (added, updated):
# the audit entry is written first, and if it cannot be, nothing changes.
BeforeCommit = Callable[[int, int], None]


def record_to_json(record: Record) -> str:
    doc = asdict(record)
    doc["birth_date"] = record.birth_date.isoformat() if record.birth_date else None
    return json.dumps(doc, ensure_ascii=False, sort_keys=True)


def record_from_json(text: str) -> Record:
    doc = json.loads(text)
    return Record(
        record_id=doc["record_id"], name=doc["name"],
        birth_date=PartialDate.parse(doc["birth_date"]) if doc["birth_date"] else None,
        nationality=doc["nationality"],
        documents=tuple(IdentityDocument(**d) for d in doc["documents"]),
        reference=doc["reference"], category=doc["category"],
    )


def compute_entries(key: ServerKey, profile: Profile, records: Sequence[Record],
                    progress: Progress | None = None) -> list[tuple[str, ServerEntry]]:
    out: list[tuple[str, ServerEntry]] = []
    for done, record in enumerate(records, start=1):
        label = tags.encode_label(record.reference, record.category)
        out.extend((record.record_id, e) for e in
                   tags.server_entries(key.secret, profile.match_keys(record), label))
        if progress and (done % 1000 == 0 or done == len(records)):
            progress(done, len(records))
    return out


def _insert_entries(db: sqlite3.Connection, epoch: int, entries: list[tuple[str, ServerEntry]]) -> None:
    """Write entries and bump the list version (inside the caller's transaction)."""
    db.executemany(
        "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)",
        [(rid, epoch, e.rule_id, e.tag_material, e.cardinality_material, e.sealed_label)
         for rid, e in entries],
    )
    db.execute("UPDATE meta SET value=value+1 WHERE name='list_version'")


class Store:
    """One node's SQLite store. Safe to open from the server and the import command at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @property
    def list_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name='list_version'").fetchone()
        return int(row[0])

    def record_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def records(self) -> list[Record]:
        rows = self._db.execute("SELECT data FROM records ORDER BY record_id").fetchall()
        return [record_from_json(r[0]) for r in rows]

    def upsert(self, records: Sequence[Record], key: ServerKey, profile: Profile,
               progress: Progress | None = None, before_commit: BeforeCommit | None = None) -> int:
        """Insert or update records with their entries for the key's epoch, all at once."""
        entries = compute_entries(key, profile, records, progress)
        with self._transaction() as db:
            existing = {row[0] for row in db.execute("SELECT record_id FROM records")}
            updated = sum(1 for r in records if r.record_id in existing)
            db.executemany("DELETE FROM entries WHERE record_id=?", [(r.record_id,) for r in records])
            db.executemany(
                "INSERT INTO records VALUES (?, ?) ON CONFLICT(record_id) DO UPDATE SET data=excluded.data",
                [(r.record_id, record_to_json(r)) for r in records],
            )
            _insert_entries(db, key.epoch, entries)
            if before_commit:
                before_commit(len(records) - updated, updated)
        return len(entries)

    def erase(self, record_ids: Sequence[str],
              before_commit: Callable[[list[str]], object] | None = None) -> list[str]:
        """Remove records (and their tags) by id; returns the ids that existed."""
        with self._transaction() as db:
            found = [rid for rid in dict.fromkeys(record_ids)
                     if db.execute("SELECT 1 FROM records WHERE record_id=?", (rid,)).fetchone()]
            db.executemany("DELETE FROM records WHERE record_id=?", [(rid,) for rid in found])
            db.execute("UPDATE meta SET value=value+1 WHERE name='list_version'")
            if before_commit:
                before_commit(found)
        return found

    def refresh_epoch(self, key: ServerKey, profile: Profile, progress: Progress | None = None) -> int:
        """Compute entries for records that lack them in the key's epoch; drop other epochs."""
        rows = self._db.execute(
            "SELECT data FROM records WHERE record_id NOT IN "
            "(SELECT DISTINCT record_id FROM entries WHERE epoch=?)", (key.epoch,)
        ).fetchall()
        stale = self._db.execute("SELECT COUNT(*) FROM entries WHERE epoch<>?", (key.epoch,)).fetchone()[0]
        if not rows and not stale:
            return 0
        records = [record_from_json(r[0]) for r in rows]
        entries = compute_entries(key, profile, records, progress)
        if not entries and not stale:
            return 0
        with self._transaction() as db:
            db.execute("DELETE FROM entries WHERE epoch<>?", (key.epoch,))
            _insert_entries(db, key.epoch, entries)
        return len(records)

    def entries(self, epoch: int) -> tuple[int, list[bytes], list[bytes], list[bytes]]:
        """(list version, tag materials, sealed labels, cardinality materials) in one read."""
        with self._transaction(write=False) as db:
            version = int(db.execute("SELECT value FROM meta WHERE name='list_version'").fetchone()[0])
            rows = db.execute(
                "SELECT tag_material, sealed_label, cardinality_material FROM entries WHERE epoch=?",
                (epoch,),
            ).fetchall()
        return version, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
