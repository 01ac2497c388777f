"""Change the node's list (`psi watchlist import`, `psi watchlist erase`), audited."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from agency.audit.log import AuditLog
from agency.config import NodeConfig, open_audit_log
from agency.faults import crash_point
from agency.file_lock import locked
from agency.keys import ServerKey
from psi.executor import INLINE, Executor
from psi.profiles import Profile
from psi.record_parsing import ParseIssue
from psi.records import PartialDate, Record
from server import audit_events as events
from server.key_lifecycle import ensure_key
from server.operations import audited
from server.recovery import reconcile
from server.store import Progress, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportReport:
    records: int
    added: int
    updated: int
    unchanged: int
    match_keys: int
    list_version: int
    list_size: int


@contextmanager
def _list_change(config: NodeConfig, operator: str,
                 executor: Executor = INLINE) -> Iterator[tuple[Store, AuditLog, ServerKey]]:
    """The store, audit log and key for one change of the list, under the node's list lock, settled first."""
    audit = open_audit_log(config)
    store = Store(config.store_path, executor)
    try:
        for note in reconcile(config, store, audit):
            log.warning("%s", note)
        with locked(config.store_path):  # one list change at a time, and never during a rotation
            yield store, audit, ensure_key(config.key_path, store, audit, operator)
    finally:
        store.close()
        audit.close()


def import_records(config: NodeConfig, records: Sequence[Record], operator: str,
                   progress: Progress | None = None, executor: Executor = INLINE, justification: str = ""
                   ) -> ImportReport:
    """Add or update `records` (by id) in one transaction, with their tags for the current epoch.

    Records identical to the stored ones are left alone; when all are, the list keeps its version.

    Audited as an intent before and an outcome after the transaction (server.recovery).
    """
    with _list_change(config, operator, executor) as (store, audit, key):
        with audited(audit, config.data_dir, events.list_change_intent("watchlist.import", operator, config.list_id,
                                                                        len(records), justification)) as op_id:
            crash_point("import.after_intent")
            keys, added, updated, unchanged = store.upsert(records, key, config.profile, progress, op_id=op_id)
            crash_point("import.after_commit")
            audit.outcome(op_id, events.watchlist_changed(
                "watchlist.update" if updated and not added else "watchlist.import", operator, config.list_id,
                added=added, updated=updated, unchanged=unchanged, justification=justification))
        return ImportReport(len(records), added, updated, unchanged, keys, store.list_version, store.record_count())


def keys_lost(profile: Profile, records: Sequence[Record], issues: Sequence[ParseIssue]) -> dict[str, int]:
    """For each record kept without its date of birth: how many match keys it yields fewer than with a date.

    The count compares the record as kept with the same record under a stand-in full date.
    """
    by_id = {r.record_id: r for r in records}
    lost: dict[str, int] = {}
    for issue in issues:
        record = by_id.get(issue.record_id)
        if issue.kind == "warning" and issue.field == "birth_date" and record is not None:
            dated = replace(record, birth_date=PartialDate(2000, 1, 1))
            lost[record.record_id] = len(profile.match_keys(dated)) - len(profile.match_keys(record))
    return lost


def erase_records(config: NodeConfig, record_ids: Sequence[str], operator: str, justification: str = "") -> list[str]:
    """Erase records by id (e.g. a cancelled alert); returns the ids that were on the list."""
    with _list_change(config, operator) as (store, audit, _):
        with audited(audit, config.data_dir, events.list_change_intent("watchlist.erase", operator, config.list_id,
                                                                        len(record_ids), justification)) as op_id:
            found = store.erase(record_ids, op_id=op_id)
            crash_point("erase.after_commit")
            audit.outcome(op_id, events.watchlist_changed("watchlist.erase", operator, config.list_id,
                                                          erased=len(found), erased_ids=found,
                                                          justification=justification))
        return found
