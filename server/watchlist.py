"""Change the node's list (`psi watchlist import`, `psi watchlist erase`), audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agency.config import NodeConfig, open_audit_log
from agency.file_lock import locked
from agency.keys import load_or_create_key
from psi.records import Record
from server import audit_events as events
from server.store import Progress, Store


@dataclass(frozen=True)
class ImportReport:
    records: int
    added: int
    updated: int
    match_keys: int
    list_version: int
    list_size: int


def import_records(config: NodeConfig, records: Sequence[Record], operator: str,
                   progress: Progress | None = None) -> ImportReport:
    """Add or update `records` (by id) in one transaction, with their tags for the current epoch."""
    audit = open_audit_log(config)
    counts: list[int] = []

    def log(added: int, updated: int) -> None:
        counts[:] = [added, updated]
        operation = "watchlist.update" if updated and not added else "watchlist.import"
        audit.append(events.watchlist_changed(operation, operator, config.list_id, added=added,
                                              updated=updated))

    store = Store(config.store_path)
    try:
        with locked(config.store_path):  # one list change at a time, and never during a rotation
            keys = store.upsert(records, load_or_create_key(config.key_path), config.profile, progress, log)
        return ImportReport(len(records), counts[0], counts[1], keys, store.list_version, store.record_count())
    finally:
        store.close()
        audit.close()


def erase_records(config: NodeConfig, record_ids: Sequence[str], operator: str) -> list[str]:
    """Erase records by id (e.g. a cancelled alert); returns the ids that were on the list."""
    audit = open_audit_log(config)
    store = Store(config.store_path)
    try:
        with locked(config.store_path):
            return store.erase(record_ids, lambda found: audit.append(events.watchlist_changed(
                "watchlist.erase", operator, config.list_id, erased=len(found), erased_ids=found)))
    finally:
        store.close()
        audit.close()
