"""The store's schema as numbered migrations; `PRAGMA user_version` says how many a file has had.

Each migration runs once, in its own write transaction that also sets the
version, under the node-wide list lock (the server, imports and officer
commands may open the same file at once). A store that is already current
is only read: no DDL, no lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from agency.file_lock import locked
from psi.errors import ConfigurationError

# The previous release's tables (unversioned stores have them, or some of them); indexes come after
# the columns that even older stores lack, since they cover those columns.
_RELEASE_0_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS records (record_id TEXT PRIMARY KEY, data TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS entries (
        record_id TEXT NOT NULL REFERENCES records(record_id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        rule_id TEXT NOT NULL,
        tag_material BLOB NOT NULL,
        cardinality_material BLOB NOT NULL,
        sealed_label BLOB NOT NULL,
        version INTEGER NOT NULL DEFAULT 0          -- the list version that added it
    )""",
    # The key-independent part of each match key (psi.tags.KeyInput): a new epoch starts from here.
    """CREATE TABLE IF NOT EXISTS match_keys (
        record_id TEXT NOT NULL REFERENCES records(record_id) ON DELETE CASCADE,
        rule_id TEXT NOT NULL,
        value BLOB NOT NULL,
        element BLOB NOT NULL,                      -- HashToGroup(value)
        label BLOB NOT NULL
    )""",
    # What each list version removed, so a partner's cached tag set can catch up with a delta.
    """CREATE TABLE IF NOT EXISTS removed (
        epoch INTEGER NOT NULL, version INTEGER NOT NULL, tag_material BLOB NOT NULL,
        cardinality_material BLOB NOT NULL, sealed_label BLOB NOT NULL,
        added_version INTEGER NOT NULL DEFAULT 0    -- the list version that had added the entry
    )""",
    """CREATE TABLE IF NOT EXISTS budgets (
        partner TEXT NOT NULL, epoch INTEGER NOT NULL, used INTEGER NOT NULL,
        PRIMARY KEY (partner, epoch)
    )""",
    "CREATE TABLE IF NOT EXISTS requests (partner TEXT NOT NULL, request_id TEXT NOT NULL, "
    "PRIMARY KEY (partner, request_id))",
    "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS followups (
        id TEXT PRIMARY KEY, partner TEXT NOT NULL, reference TEXT NOT NULL, record_id TEXT NOT NULL,
        purpose TEXT NOT NULL, case_reference TEXT NOT NULL, officer TEXT NOT NULL, message TEXT NOT NULL,
        request_id TEXT NOT NULL, created TEXT NOT NULL, deadline TEXT NOT NULL, status TEXT NOT NULL,
        decided_by TEXT NOT NULL DEFAULT '', decided_at TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',
        fields TEXT NOT NULL DEFAULT '{}'
    )""",
)
_OLDER_COLUMNS = (("entries", "version"), ("removed", "added_version"))  # stores before the removal log's ages
_RELEASE_0_INDEXES = (
    "CREATE INDEX IF NOT EXISTS entries_by_record ON entries(record_id, epoch)",
    "CREATE INDEX IF NOT EXISTS entries_by_epoch ON entries(epoch, version)",
    "CREATE INDEX IF NOT EXISTS match_keys_by_record ON match_keys(record_id)",
    "CREATE INDEX IF NOT EXISTS removed_by_epoch ON removed(epoch, version)",
    "INSERT OR IGNORE INTO meta VALUES ('list_version', 0)",
)
_VERSIONED = (
    # Removals are logged by the code that removes records (server.store), not by triggers.
    "DROP TRIGGER IF EXISTS entries_removed",
    "DROP TRIGGER IF EXISTS entries_removed_v2",
    # The key epoch a request id was used in: ids of past epochs can go. NULL: used before epochs were kept.
    "ALTER TABLE requests ADD COLUMN epoch INTEGER",
    "CREATE INDEX requests_by_epoch ON requests(epoch)",
    "CREATE TABLE key_epochs (epoch INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, created TEXT NOT NULL)",
    # Audited state changes that committed, each written in the transaction that made the change.
    "CREATE TABLE operations (op_id TEXT PRIMARY KEY, kind TEXT NOT NULL, done_at TEXT NOT NULL)",
)


def _to_1(db: sqlite3.Connection) -> None:
    """From an unversioned store (the previous release's, or older, or a new file) to the first versioned one."""
    for statement in _RELEASE_0_TABLES:
        db.execute(statement)
    for table, column in _OLDER_COLUMNS:
        if not any(col[1] == column for col in db.execute(f"PRAGMA table_info({table})")):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
    for statement in (*_RELEASE_0_INDEXES, *_VERSIONED):
        db.execute(statement)


def _to_2(db: sqlite3.Connection) -> None:
    """Entries keep their label key (the OPRF output's second half) for bulk mode; NULL in entries made before."""
    db.execute("ALTER TABLE entries ADD COLUMN label_key BLOB")


Migration = Callable[[sqlite3.Connection], None]
# Migration n (1-based) takes a store from user_version n-1 to n. Append only; never edit a released one.
MIGRATIONS: tuple[Migration, ...] = (_to_1, _to_2)


def _schema_version(db: sqlite3.Connection, path: Path, known: int) -> int:
    """The store's user_version; refuses a store written by newer code than this."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > known:
        raise ConfigurationError(
            f"the store {path} has schema version {version}, newer than this software knows ({known}); "
            "upgrade the software to open it")
    return version


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the store at `path` (open as `db`, in autocommit mode) to the last of MIGRATIONS.

    Takes the list lock only when a migration is due, so never open a store while holding it.
    """
    last = len(MIGRATIONS)
    if _schema_version(db, path, last) == last:
        return
    with locked(path):
        # Read again under the lock: another process may have migrated meanwhile.
        for number in range(_schema_version(db, path, last) + 1, last + 1):
            db.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[number - 1](db)
                db.execute(f"PRAGMA user_version={number}")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
