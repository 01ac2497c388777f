"""Import records into the node's list (`psi watchlist import`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psi.records import Record
from server.config import NodeConfig
from server.keys import load_or_create_key
from server.store import Progress, Store


@dataclass(frozen=True)
class ImportReport:
    records: int
    match_keys: int
    list_version: int
    list_size: int


def import_records(config: NodeConfig, records: Sequence[Record],
                   progress: Progress | None = None) -> ImportReport:
    """Add or update `records` (by id) in one transaction, with their tags for the current epoch."""
    store = Store(config.store_path)
    try:
        keys = store.upsert(records, load_or_create_key(config.key_path), config.profile, progress)
        return ImportReport(len(records), keys, store.list_version, store.record_count())
    finally:
        store.close()
