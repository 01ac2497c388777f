"""The node's list in SQLite (WAL): records, and their per-epoch tag material.

An import is all or nothing: its tag material is computed before the one
transaction that writes records and entries and bumps the list version.
The schema is versioned (server.migrations). Audited changes can record an
operation id in their own transaction, so that after a crash `committed`
tells whether a change whose audit entry was written took effect.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from agency.audit.log import timestamp, utc_now
from agency.faults import crash_point
from agency.keys import ServerKey
from agency.record_format import record_from_json, record_to_json
from psi import tags
from psi.errors import BudgetExceededError, ConfigurationError, InputError, OutOfOrderError, ReplayError, StorageError
from psi.executor import INLINE, Executor, map_chunks, map_stream
from psi.profiles import Profile
from psi.records import Record
from psi.tags import EpochEntry, KeyInput
from server.migrations import migrate

_STAGING = """
CREATE TEMP TABLE staged_records (record_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TEMP TABLE staged_keys (record_id TEXT, rule_id TEXT, value BLOB, element BLOB, label BLOB);  -- KeyInput
CREATE TEMP TABLE staged_entries (record_id TEXT, rule_id TEXT, tag_material BLOB,  -- EpochEntry
                                  cardinality_material BLOB, sealed_label BLOB, label_key BLOB);
"""
_STAGE = {"staged_records": "INSERT INTO temp.staged_records VALUES (?, ?)",
          "staged_keys": "INSERT INTO temp.staged_keys VALUES (?, ?, ?, ?, ?)",
          "staged_entries": "INSERT INTO temp.staged_entries VALUES (?, ?, ?, ?, ?, ?)"}
_INPUT_COLUMNS = "SELECT record_id, rule_id, value, element, label"  # a psi.tags.KeyInput
_ENTRY_COLUMNS = "record_id, epoch, rule_id, tag_material, cardinality_material, sealed_label, version, label_key"
_INSERT_ENTRIES = f"INSERT INTO entries ({_ENTRY_COLUMNS})"
_LACKING = ("FROM match_keys AS m WHERE NOT EXISTS "  # match keys with no entry in one epoch
            "(SELECT 1 FROM entries AS e WHERE e.record_id = m.record_id AND e.epoch = ?)")
_ALL_KEYS = "FROM match_keys AS m WHERE true"
_FILL_PAGE = 4096
_PROFILE_SETTING = "profile_hash"  # the profile the stored match keys were made under
Progress = Callable[[int, int], None]


# Kinds of the operations the store's own audited changes record.
IMPORT_OPERATION = "watchlist.import"
ERASE_OPERATION = "watchlist.erase"
# Each removed entry is logged with the list version that removes it, for the deltas of `changes`.
_LOG_REMOVALS = ("INSERT INTO removed (epoch, version, tag_material, cardinality_material, sealed_label, "
                 "added_version) SELECT epoch, ?, tag_material, cardinality_material, sealed_label, version "
                 "FROM entries WHERE ")


def _put_setting(db: sqlite3.Connection, name: str, value: str) -> None:
    db.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value", (name, value))


class Upserted(NamedTuple):
    match_keys: int  # computed: those of the records, or of the whole list under a new profile
    added: int
    updated: int
    unchanged: int = 0  # records identical to the stored ones: not touched, no new list version


def _next_version(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT value FROM meta WHERE name='list_version'").fetchone()[0]) + 1


def _write_entries(db: sqlite3.Connection, epoch: int, version: int, entries: Sequence[EpochEntry]) -> None:
    # Epoch and version are the same for every row: as literals, the entries' own tuples are the rows
    # (no second tuple per key).
    db.executemany(f"{_INSERT_ENTRIES} VALUES (?1, {int(epoch)}, ?2, ?3, ?4, ?5, {int(version)}, ?6)",
                   entries)


def _publish(db: sqlite3.Connection, version: int) -> None:
    db.execute("UPDATE meta SET value=MAX(value, ?) WHERE name='list_version'", (version,))


class Store:
    """One node's SQLite store. Safe to open from the server and the import command at once.

    Opening migrates an older store under the list lock (`agency.file_lock.locked`): never open
    one while holding that lock.
    """

    def __init__(self, path: Path, executor: Executor = INLINE) -> None:
        self._executor = executor  # computes match keys and tags for imports and new epochs
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=FULL")
            migrate(self._db, path)
        except BaseException:
            self._db.close()
            raise
        self._lock = threading.RLock()  # one connection, shared by the server's threads
        self._staging_lock = threading.Lock()  # the staging tables are the connection's: one change at a time

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _connection(self) -> Iterator[None]:
        """The connection, for this thread alone; the disk's failures become an operator's error."""
        with self._lock:
            try:
                yield
            except sqlite3.OperationalError as exc:  # disk full, read-only file, I/O error, lock timeout
                raise StorageError(f"the node's store {self._path} failed: {exc}; check free disk space and "
                                   "the file's permissions, then retry (nothing was changed)") from None

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._connection():
            self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> Any:
        rows = self.query(sql, args)
        return rows[0][0] if rows else None

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read, safe beside the server's other threads."""
        with self._connection():
            return list(self._db.execute(sql, args).fetchall())

    def query_rows(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """Like `query`, with rows that are read by column name."""
        with self._connection():
            cursor = self._db.cursor()
            cursor.row_factory = sqlite3.Row
            return list(cursor.execute(sql, args).fetchall())

    @contextmanager
    def _joined(self, db: sqlite3.Connection | None) -> Iterator[sqlite3.Connection]:
        """The caller's transaction, or one of its own."""
        if db is not None:
            yield db
        else:
            with self.transaction() as own:
                yield own

    @staticmethod
    def mark_operation(db: sqlite3.Connection, op_id: str, kind: str) -> None:
        """Record, in the caller's transaction `db`, that operation `op_id` is done: it commits with the change."""
        try:
            db.execute("INSERT INTO operations VALUES (?, ?, ?)", (op_id, kind, timestamp(utc_now())))
        except sqlite3.IntegrityError:
            raise OutOfOrderError(f"operation {op_id} was already done") from None

    def committed(self, op_id: str) -> bool:
        """Whether the change of operation `op_id` committed."""
        return bool(self._one("SELECT EXISTS (SELECT 1 FROM operations WHERE op_id=?)", (op_id,)))

    def record_key_epoch(self, db: sqlite3.Connection | None, epoch: int, fingerprint: str) -> None:
        """Remember the key of an epoch by its fingerprint; an epoch keeps the key it was first recorded with."""
        with self._joined(db) as joined:
            joined.execute("INSERT INTO key_epochs VALUES (?, ?, ?) ON CONFLICT(epoch) DO NOTHING",
                           (epoch, fingerprint, timestamp(utc_now())))
            known = joined.execute("SELECT fingerprint FROM key_epochs WHERE epoch=?", (epoch,)).fetchone()[0]
            if known != fingerprint:
                raise ConfigurationError(
                    f"key epoch {epoch} was recorded with the key {known[:16]}, not {fingerprint[:16]}: the key "
                    "file was replaced by another key of the same epoch; restore it, or rotate to a new epoch")

    def key_epochs(self) -> list[tuple[int, str]]:
        """(epoch, key fingerprint) of every recorded epoch, oldest first."""
        return [(int(e), str(f)) for e, f in self.query("SELECT epoch, fingerprint FROM key_epochs ORDER BY epoch")]

    def current_key_epoch(self) -> tuple[int, str] | None:
        """(epoch, key fingerprint) of the highest recorded epoch, if any."""
        rows = self.query("SELECT epoch, fingerprint FROM key_epochs ORDER BY epoch DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    @property
    def list_version(self) -> int:
        return int(self._one("SELECT value FROM meta WHERE name='list_version'"))

    def record_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM records"))

    def records(self) -> list[Record]:
        with self._connection():
            rows = self._db.execute("SELECT data FROM records ORDER BY record_id").fetchall()
        return [record_from_json(r[0]) for r in rows]

    def record(self, record_id: str) -> Record | None:
        data = self._one("SELECT data FROM records WHERE record_id=?", (record_id,))
        return None if data is None else record_from_json(str(data))

    def records_with_reference(self, reference: str) -> list[Record]:
        with self._connection():
            rows = self._db.execute("SELECT data FROM records WHERE json_extract(data, '$.reference') = ?",
                                    (reference,)).fetchall()
        return [record_from_json(r[0]) for r in rows]

    def setting(self, name: str) -> str | None:
        value = self._one("SELECT value FROM settings WHERE name=?", (name,))
        return None if value is None else str(value)

    def set_setting(self, name: str, value: str) -> None:
        with self.transaction() as db:
            _put_setting(db, name, value)

    def budget_used(self, partner: str, epoch: int, *, db: sqlite3.Connection | None = None) -> int:
        """Elements evaluated for the partner in the epoch; read in the caller's transaction `db` if given."""
        sql, args = "SELECT used FROM budgets WHERE partner=? AND epoch=?", (partner, epoch)
        if db is None:
            return int(self._one(sql, args) or 0)
        row = db.execute(sql, args).fetchone()
        return int(row[0]) if row else 0

    def charge_budget(self, partner: str, epoch: int, amount: int, limit: int) -> int:
        """Add `amount` evaluated elements to the partner's budget for the epoch, or refuse."""
        with self.transaction() as db:
            row = db.execute("SELECT used FROM budgets WHERE partner=? AND epoch=?", (partner, epoch)).fetchone()
            used = int(row[0]) if row else 0
            if used + amount > limit:
                raise BudgetExceededError(
                    f"the evaluation budget of {limit} elements for key epoch {epoch} would be exceeded "
                    f"({used} used, {amount} asked); it resets when the node rotates its key")
            db.execute("INSERT INTO budgets VALUES (?, ?, ?) ON CONFLICT(partner, epoch) "
                       "DO UPDATE SET used=excluded.used", (partner, epoch, used + amount))
        return used + amount

    def refund_budget(self, partner: str, epoch: int, amount: int) -> None:
        if amount > 0:
            with self.transaction() as db:
                db.execute("UPDATE budgets SET used=MAX(0, used-?) WHERE partner=? AND epoch=?",
                           (amount, partner, epoch))

    def remember_request(self, partner: str, request_id: str, epoch: int, *,
                         db: sqlite3.Connection | None = None) -> None:
        """Record a request id, used in key epoch `epoch`, once (in the caller's transaction `db` if given).

        A second use is a replay.
        """
        if not request_id:
            raise InputError("a request needs a request id (a fresh random string per request)")
        with self._joined(db) as joined:
            try:
                joined.execute("INSERT INTO requests (partner, request_id, epoch) VALUES (?, ?, ?)",
                               (partner, request_id, epoch))
            except sqlite3.IntegrityError:
                raise ReplayError(f"request id '{request_id}' was already used; send a fresh one") from None

    def prune_requests(self, keep_epoch: int) -> None:
        """Forget the request ids of epochs before `keep_epoch`: a request is bound to its epoch's key."""
        with self.transaction() as db:
            # Ids of an unknown epoch were used in the first recorded epoch or before it.
            db.execute("DELETE FROM requests WHERE epoch < ?1 OR "
                       "(epoch IS NULL AND ?1 > (SELECT MIN(epoch) FROM key_epochs))", (keep_epoch,))

    def upsert(self, records: Sequence[Record], key: ServerKey, profile: Profile,
               progress: Progress | None = None, *,
               op_id: str | None = None) -> Upserted:
        """Insert or update records with their match keys and entries for the key's epoch, all at once.

        Returns the number of match keys computed (those of `records`, or of the whole list when
        the stored match keys were made under another profile: all are replaced, atomically) and
        how many records were added and updated.
        Callers hold the node's list lock (`agency.file_lock.locked`), as every list change does.
        With `op_id`, the operation is recorded as done (IMPORT_OPERATION) in the same transaction.
        """
        stale = not self.holds_profile(profile)
        given = len(records)
        if not stale:  # an identical record changes nothing: no tags computed, no list version
            records = self._changed(records)
            if not records:
                if op_id is not None:
                    with self.transaction() as db:
                        self.mark_operation(db, op_id, IMPORT_OPERATION)
                return Upserted(0, 0, 0, given)
        ids = {r.record_id for r in records}
        todo = [*records, *(r for r in self.records() if r.record_id not in ids)] if stale else list(records)
        running = map_chunks(self._executor, tags.prepare_records, todo, key.secret, profile, chunk=2048)
        computed = 0
        # Staged in this connection's temporary tables while the workers compute, so that the one
        # transaction that changes the list (and holds up the server's writes) only copies rows.
        with self._staging():
            self._stage("staged_records", [(r.record_id, record_to_json(r)) for r in records])
            for part in running.parts(progress):
                self._stage("staged_keys", [i for i, _ in part])
                self._stage("staged_entries", [e for _, e in part])
                computed += len(part)
            with self.transaction() as db:
                updated = int(db.execute("SELECT COUNT(*) FROM staged_records AS s WHERE EXISTS "
                                         "(SELECT 1 FROM records AS r WHERE r.record_id = s.record_id)").fetchone()[0])
                version = _next_version(db)
                if stale:
                    db.execute(_LOG_REMOVALS + "true", (version,))
                    db.execute("DELETE FROM match_keys")
                    db.execute("DELETE FROM entries")
                    _put_setting(db, _PROFILE_SETTING, profile.definition_hash.hex())
                else:
                    replaced = "record_id IN (SELECT record_id FROM staged_records)"
                    db.execute(_LOG_REMOVALS + replaced, (version,))
                    db.execute(f"DELETE FROM entries WHERE {replaced}")  # noqa: S608 (fixed clauses)
                    db.execute(f"DELETE FROM match_keys WHERE {replaced}")  # noqa: S608
                db.execute("INSERT INTO records SELECT record_id, data FROM staged_records WHERE true ORDER BY rowid "
                           "ON CONFLICT(record_id) DO UPDATE SET data=excluded.data")
                db.execute("INSERT INTO match_keys SELECT * FROM staged_keys ORDER BY rowid")
                db.execute(_INSERT_ENTRIES + " SELECT record_id, ?, rule_id, "  # noqa: S608 (fixed clauses)
                           "tag_material, cardinality_material, sealed_label, ?, label_key FROM staged_entries "
                           "ORDER BY rowid", (key.epoch, version))
                _publish(db, version)
                if op_id is not None:
                    self.mark_operation(db, op_id, IMPORT_OPERATION)
                crash_point("store.before_commit")
        return Upserted(computed, len(records) - updated, updated, given - len(records))

    def _changed(self, records: Sequence[Record]) -> list[Record]:
        """The records that are new or differ from the stored ones (compared in canonical form)."""
        stored: dict[str, str] = {}
        ids = [r.record_id for r in records]
        for start in range(0, len(ids), 500):  # under SQLite's limit of bound parameters
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            stored.update(self.query(f"SELECT record_id, data FROM records WHERE record_id IN ({marks})",  # noqa: S608
                                     tuple(part)))
        canonical = {rid: record_to_json(record_from_json(data)) for rid, data in stored.items()}
        return [r for r in records if canonical.get(r.record_id) != record_to_json(r)]

    @contextmanager
    def _staging(self) -> Iterator[None]:
        """Empty temporary tables for one change of the list; they go when it ends, however it ends."""
        with self._staging_lock:
            with self._connection():
                self._db.executescript(_STAGING)
            try:
                yield
            finally:
                with self._connection():
                    self._db.executescript("".join(f"DROP TABLE IF EXISTS temp.{table};" for table in _STAGE))

    def _stage(self, table: str, rows: Sequence[tuple[object, ...]]) -> None:
        with self._connection():
            self._db.executemany(_STAGE[table], rows)

    def erase(self, record_ids: Sequence[str],
              *, op_id: str | None = None) -> list[str]:
        """Remove records (and their tags) by id; returns the ids that existed.

        With `op_id`, the operation is recorded as done (ERASE_OPERATION) in the same transaction.
        """
        with self.transaction() as db:
            found = [rid for rid in dict.fromkeys(record_ids)
                     if db.execute("SELECT 1 FROM records WHERE record_id=?", (rid,)).fetchone()]
            version = _next_version(db)
            db.executemany(_LOG_REMOVALS + "record_id=?", [(version, rid) for rid in found])
            db.executemany("DELETE FROM records WHERE record_id=?", [(rid,) for rid in found])  # entries cascade
            _publish(db, version)
            if op_id is not None:
                self.mark_operation(db, op_id, ERASE_OPERATION)
            crash_point("store.before_commit")
        return found

    def holds_profile(self, profile: Profile) -> bool:
        """Whether the stored match keys were made under `profile`."""
        return self.setting(_PROFILE_SETTING) == profile.definition_hash.hex()

    def fill_epoch(self, key: ServerKey, profile: Profile, progress: Progress | None = None) -> int:
        """Compute entries for match keys that lack them in the key's epoch; other epochs stay.

        Starts from the stored match keys and their group elements, so a new epoch costs one
        scalar multiplication per key. Returns the number of entries computed.
        """
        if not self.holds_profile(profile):
            return self.upsert([], key, profile, progress).match_keys  # keys of another profile: all anew
        # An empty epoch (a rotation's) needs every key, without asking per key whether it has an entry.
        source, args = (_LACKING, (key.epoch,)) if self._one(
            "SELECT EXISTS (SELECT 1 FROM entries WHERE epoch=?)", (key.epoch,)) else (_ALL_KEYS, ())
        total = int(self._one(f"SELECT COUNT(*) {source}", args))
        if not total:
            return 0
        with self.transaction(write=False) as db:
            version = _next_version(db)
        computed = 0
        # Pages of whole records are read while the workers compute the previous ones, and each
        # is written in a short transaction that never holds up the server; the version is
        # published once, at the end. An interruption never leaves half a record.
        pages = self._input_pages(source, args, _FILL_PAGE)
        for part in map_stream(self._executor, tags.epoch_entries, pages, key.secret, size=total):
            with self.transaction() as db:
                _write_entries(db, key.epoch, version, part)
            computed += len(part)
            if progress:
                progress(computed, total)
        with self.transaction() as db:
            _publish(db, version)
        return computed

    def _input_pages(self, source: str, args: tuple[object, ...], size: int) -> Iterator[list[KeyInput]]:
        """The stored match keys `source` selects, in pages of about `size` keys of whole records."""
        after = ""  # record ids are never empty
        while rows := self.query(f"{_INPUT_COLUMNS} {source} AND record_id > ? ORDER BY record_id LIMIT ?",
                                 (*args, after, size)):
            if len(rows) == size:  # the page may end inside a record: take all of that record's keys
                last = rows[-1][0]
                rows = [r for r in rows if r[0] != last] + self.query(
                    f"{_INPUT_COLUMNS} FROM match_keys WHERE record_id=? ORDER BY rowid", (last,))
            yield rows
            after = rows[-1][0]

    def clear_epoch(self, epoch: int) -> None:
        """Forget one epoch's entries (what a rotation cut short left of a new epoch)."""
        self._delete_entries("epoch=?", epoch)

    def drop_other_epochs(self, epoch: int) -> None:
        """Forget every other epoch's tags and request ids (after a rotation, or a restart mid-rotation)."""
        self._delete_entries("epoch<>?", epoch)
        self.prune_requests(epoch)

    def _delete_entries(self, where: str, epoch: int) -> None:
        # No removal is logged: no partner caches the tags of an epoch other than the current one.
        if self._one(f"SELECT COUNT(*) FROM entries WHERE {where}", (epoch,)):  # noqa: S608 (fixed clauses)
            with self.transaction() as db:
                db.execute(f"DELETE FROM entries WHERE {where}", (epoch,))  # noqa: S608
                db.execute(f"DELETE FROM removed WHERE {where}", (epoch,))  # noqa: S608
                db.execute("UPDATE meta SET value=value+1 WHERE name='list_version'")

    def refresh_epoch(self, key: ServerKey, profile: Profile, progress: Progress | None = None) -> None:
        """Bring the store to exactly the key's epoch (at start-up)."""
        self.fill_epoch(key, profile, progress)
        self.drop_other_epochs(key.epoch)

    def changes(self, epoch: int, since: int) -> tuple[int, int, list[tuple[bytes, bytes, bytes]],
                                                       list[tuple[bytes, bytes, bytes]]]:
        """(list version, entry count, added, removed) of the epoch after version `since`, in one read.

        Each entry is (tag material, sealed label, cardinality material).
        """
        with self.transaction(write=False) as db:
            version = int(db.execute("SELECT value FROM meta WHERE name='list_version'").fetchone()[0])
            added = db.execute("SELECT tag_material, sealed_label, cardinality_material FROM entries "
                               "WHERE epoch=? AND version>?", (epoch, since)).fetchall()
            # Only what a holder of version `since` has: an entry added and removed since then never reached it.
            removed = db.execute("SELECT tag_material, sealed_label, cardinality_material FROM removed "
                                 "WHERE epoch=? AND version>? AND added_version<=?", (epoch, since, since)).fetchall()
            total = int(db.execute("SELECT COUNT(*) FROM entries WHERE epoch=?", (epoch,)).fetchone()[0])
        return version, total, added, removed

    def entries(self, epoch: int) -> tuple[int, list[bytes], list[bytes], list[bytes]]:
        """(list version, tag materials, sealed labels, cardinality materials) in one read."""
        with self.transaction(write=False) as db:
            version = int(db.execute("SELECT value FROM meta WHERE name='list_version'").fetchone()[0])
            rows = db.execute(
                "SELECT tag_material, sealed_label, cardinality_material FROM entries WHERE epoch=?",
                (epoch,),
            ).fetchall()
        return version, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    # Bulk mode (server.bulk). Each entry pairs with the match key it was computed from by its place
    # among its record's keys of the same rule: `upsert` and `fill_epoch` write a record's entries in the
    # order of its stored match keys (tests/integration/test_bulk_store.py holds them to it).

    def missing_label_keys(self, epoch: int) -> int:
        """Entries of `epoch` without their label key (computed before store schema 2)."""
        return int(self._one("SELECT COUNT(*) FROM entries WHERE epoch=? AND label_key IS NULL", (epoch,)))

    def backfill_label_keys(self, key: ServerKey, progress: Progress | None = None) -> int:
        """Give the key's epoch's entries made before schema 2 their label key; returns how many were filled.

        Each is recomputed from its record's stored match keys (`psi.tags.epoch_entries`) and written in
        place, found by its record, rule and tag material, so tag material, sealed label and list version
        stay as they were and no partner's cached tags change. Callers hold the list lock
        (`agency.file_lock.locked`), as for every change of entries.
        """
        total = self.missing_label_keys(key.epoch)
        if not total:
            return 0
        source = ("FROM match_keys AS m WHERE record_id IN "
                  "(SELECT record_id FROM entries WHERE epoch=? AND label_key IS NULL)")
        filled = 0
        pages = self._input_pages(source, (key.epoch,), _FILL_PAGE)
        for part in map_stream(self._executor, tags.epoch_entries, pages, key.secret, size=total):
            with self.transaction() as db:
                for record_id, rule_id, material, _, _, label_key in part:
                    filled += db.execute(
                        "UPDATE entries SET label_key=? WHERE epoch=? AND record_id=? AND rule_id=? "
                        "AND tag_material=? AND label_key IS NULL",
                        (label_key, key.epoch, record_id, rule_id, material)).rowcount
            if progress:
                progress(min(filled, total), total)
        return filled

    def bulk_inputs(self, epoch: int) -> BulkInputs:
        """The epoch's entries as a bulk-mode sender takes them, in one read: each one's match key, and its
        payload `label_key ‖ sealed_label`. Nothing else of the list is read.

        StorageError when an entry lacks its label key (`backfill_label_keys` first) or its match key.
        """
        with self.transaction(write=False) as db:
            version = int(db.execute("SELECT value FROM meta WHERE name='list_version'").fetchone()[0])
            # A record's entries are written in the order of its match keys (upsert, fill_epoch): both
            # read in (record, insertion) order pair up one to one, which each pair's ids confirm.
            keys_read = db.execute("SELECT record_id, rule_id, value FROM match_keys ORDER BY record_id, rowid")
            entries_read = db.execute("SELECT record_id, rule_id, label_key, sealed_label FROM entries "
                                      "WHERE epoch=? ORDER BY record_id, rowid", (epoch,))
            keys: list[bytes] = []
            payloads: list[bytes] = []
            for key_row, entry_row in itertools.zip_longest(keys_read, entries_read):
                if key_row is None or entry_row is None or key_row[:2] != entry_row[:2]:
                    raise StorageError(f"the entries of key epoch {epoch} do not pair with the stored match keys; "
                                       "recompute them with a key rotation")
                label_key, sealed = entry_row[2:]
                if label_key is None:
                    raise StorageError(f"entries of key epoch {epoch} lack their label key; the node fills them "
                                       "in at its start (restart it)")
                keys.append(key_row[2])
                payloads.append(label_key + sealed)
        return BulkInputs(version, keys, payloads)


class BulkInputs(NamedTuple):
    """What a bulk-mode sender is built from (`Store.bulk_inputs`)."""

    list_version: int
    keys: list[bytes]  # match key values, one per entry (a key on several records appears once for each)
    payloads: list[bytes]  # label key (32 bytes) ‖ sealed label, aligned with `keys`
