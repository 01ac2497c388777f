"""Follow-up requests after a hit: received over gRPC, decided by an officer, released once.

Only the approved fields of the one record behind the reference are
released, only to the agency that asked (checked against its certificate),
and each step is an audit entry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agency.agreements import Agreement
from agency.audit.log import AuditLog, timestamp, utc_now
from agency.keys import ServerKey
from psi import followup, oprf, tags
from psi.errors import InputError, NotFoundError, OutOfOrderError, PermissionDeniedError
from psi.messages import FollowUpStatus, Mode
from psi.profiles import Profile
from psi.records import Record
from server import audit_events as events
from server.operations import audited
from server.store import Store

FIELDS = ("name", "birth_date", "nationality", "documents", "category")
# Kinds of the operations recorded with the follow-up changes (Store.committed).
RECEIVE_OPERATION = "followup.received"
DECIDE_OPERATION = "followup.decided"


@dataclass(frozen=True)
class FollowUp:
    followup_id: str
    partner: str
    reference: str
    record_id: str
    purpose: str
    case_reference: str
    officer: str
    message: str
    created: str
    deadline: str
    status: str  # pending | approved | denied
    decided_by: str
    decided_at: str
    reason: str
    fields: dict[str, str]

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FollowUp:
        """A row of the followups table, read by column name (the id is the column `id`)."""
        values = {f.name: row[f.name] for f in dataclasses.fields(cls) if f.name not in ("followup_id", "fields")}
        return cls(followup_id=row["id"], fields=json.loads(row["fields"]), **values)

    def overdue(self, now: dt.datetime) -> bool:
        return self.status == "pending" and timestamp(now) > self.deadline

    def public(self, now: dt.datetime) -> FollowUpStatus:
        """What the requesting agency may see: fields only once approved."""
        fields = tuple(self.fields.items()) if self.status == "approved" else ()
        return FollowUpStatus(self.followup_id, self.status, self.deadline, self.overdue(now), self.reference,
                              fields, self.reason, self.decided_by)


def field_values(record: Record, names: list[str]) -> dict[str, str]:
    values = {
        "name": record.name or f"{record.given_name} {record.family_name}".strip(),
        "birth_date": record.birth_date.isoformat() if record.birth_date else "",
        "nationality": record.nationality or "",
        "documents": "; ".join(f"{d.doc_type} {d.number} ({d.country})" for d in record.documents),
        "category": record.category,
    }
    return {name: values[name] for name in names}


class FollowUpDesk:
    """The answering node's follow-up requests, in its store's SQLite file."""

    def __init__(self, store: Store, audit: AuditLog, data_dir: Path) -> None:
        self._store = store
        self._audit = audit
        self._data_dir = data_dir  # where operation locks live (server.operations)

    def receive(self, partner: str, agreement: Agreement, key: ServerKey, profile: Profile,
                request: dict[str, Any], now: dt.datetime) -> FollowUp:
        """Check and store a partner's request; raises PermissionDeniedError unless it proves a hit.

        Audited as an intent, the stored request (with its op id), then the outcome.
        """
        for name in ("reference", "purpose", "case_reference", "officer", "request_id"):
            if not str(request.get(name, "")).strip():
                raise InputError(f"a follow-up request needs a {name.replace('_', ' ')}")
        if Mode.INTERSECTION not in agreement.modes and Mode.BULK not in agreement.modes:  # modes that give hits
            raise PermissionDeniedError(f"the agreement with '{partner}' does not cover follow-up requests")
        record = _proven_record(partner, key, profile, self._store.records_with_reference(request["reference"]),
                                request)
        self._store.remember_request(partner, request["request_id"], key.epoch)
        row = FollowUp(uuid.uuid4().hex[:16], partner, request["reference"], record.record_id,
                       request["purpose"], request["case_reference"], request["officer"],
                       str(request.get("message", "")), timestamp(now),
                       timestamp(now + dt.timedelta(hours=agreement.followup_reply_hours)), "pending", "", "", "",
                       {})
        body = events.followup(row.__dict__, "followup.received", role="server")
        with audited(self._audit, self._data_dir, body) as op_id:
            with self._store.transaction() as db:
                db.execute("INSERT INTO followups (id, partner, reference, record_id, purpose, case_reference, "
                           "officer, message, request_id, created, deadline, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           (row.followup_id, partner, row.reference, row.record_id, row.purpose, row.case_reference,
                            row.officer, row.message, request["request_id"], row.created, row.deadline, row.status))
                self._store.mark_operation(db, op_id, RECEIVE_OPERATION)
            self._audit.outcome(op_id, body)
        return row

    def get(self, followup_id: str, partner: str | None = None) -> FollowUp:
        """One request; with `partner`, only that partner's: another's answers exactly like an unknown id."""
        rows = self._store.query_rows("SELECT * FROM followups WHERE id=?", (followup_id,))
        if not rows or partner not in (None, rows[0]["partner"]):
            raise NotFoundError(f"no follow-up request '{followup_id}'")
        return FollowUp.from_row(rows[0])

    def for_partner(self, partner: str, followup_id: str) -> FollowUp:
        """A partner's own request; releasing approved fields is audited as a disclosure."""
        item = self.get(followup_id, partner)
        if item.status == "approved":
            body = events.followup(item.__dict__, "followup.disclosed", role="server")
            body["fields_released"] = sorted(item.fields)
            self._audit.append(body)
        return item

    def all(self) -> list[FollowUp]:
        return [FollowUp.from_row(r) for r in self._store.query_rows("SELECT * FROM followups ORDER BY created")]

    def decide(self, followup_id: str, officer: str, *, approve_fields: list[str] | None = None,
               reason: str = "", now: dt.datetime | None = None) -> FollowUp:
        """Approve some fields, or deny with a reason; each request is decided once, by one officer.

        Audited as an intent, the conditional update (with its op id), then the outcome: of two
        officers deciding at once, one wins and the other's intent ends `aborted`.
        """
        item = self.get(followup_id)
        if item.status != "pending":
            raise OutOfOrderError(f"follow-up {followup_id} was already {item.status} by {item.decided_by}")
        if not officer.strip():
            raise InputError("name the deciding officer")
        values: dict[str, str] = {}
        if approve_fields is not None:
            unknown = sorted(set(approve_fields) - set(FIELDS))
            if unknown or not approve_fields:
                raise InputError(f"fields must be some of {', '.join(FIELDS)} (unknown: {unknown or 'none given'})")
            record = self._store.record(item.record_id)
            if record is None:
                raise NotFoundError(f"record {item.record_id} is no longer on the list")
            values = field_values(record, list(dict.fromkeys(approve_fields)))
            status = "approved"
        else:
            if not reason.strip():
                raise InputError("a denial needs a reason")
            status = "denied"
        decided_at = timestamp(now or utc_now())
        body = events.followup(item.__dict__, f"followup.{status}", role="server")
        # A deny reason may name the person, like a message: only its length is logged.
        body.update({"decided_by": officer, "fields_approved": sorted(values), "reason_chars": len(reason)})
        with audited(self._audit, self._data_dir, body) as op_id:
            try:
                with self._store.transaction() as db:
                    # Only a pending request changes: of two decisions at once (threads or processes), one wins.
                    if not db.execute("UPDATE followups SET status=?, decided_by=?, decided_at=?, reason=?, fields=? "
                                      "WHERE id=? AND status='pending'",
                                      (status, officer, decided_at, reason, json.dumps(values, ensure_ascii=False),
                                       followup_id)).rowcount:
                        winner, decided_by = db.execute("SELECT status, decided_by FROM followups WHERE id=?",
                                                        (followup_id,)).fetchone()
                        raise OutOfOrderError(f"follow-up {followup_id} was already {winner} by {decided_by}")
                    self._store.mark_operation(db, op_id, DECIDE_OPERATION)
            except OutOfOrderError as lost:
                self._audit.outcome(op_id, {**body, "message": str(lost)}, outcome="aborted")
                raise
            self._audit.outcome(op_id, body)
        return self.get(followup_id)


def _proven_record(partner: str, key: ServerKey, profile: Profile, records: list[Record],
                   request: dict[str, Any]) -> Record:
    proof = request.get("proof", b"")
    for record in records:
        for match_key in profile.match_keys(record):
            label_key = tags.split_output(oprf.evaluate(key.secret, match_key.value))[1]
            if followup.proof_matches(followup.followup_key(label_key), partner, request["reference"],
                                      request["request_id"], proof):
                return record
    raise PermissionDeniedError(
        "no hit with this reference was obtained by this agency in the current key epoch; "
        "match again and use the proof from that result")
