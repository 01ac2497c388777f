"""Follow-up requests after a hit: received over gRPC, decided by an officer, released once.

Only the approved fields of the one record behind the reference are
released, only to the agency that asked (checked against its certificate),
and each step is an audit entry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from dataclasses import dataclass
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
from server.store import Store

FIELDS = ("name", "birth_date", "nationality", "documents", "category")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS followups (
    id TEXT PRIMARY KEY, partner TEXT NOT NULL, reference TEXT NOT NULL, record_id TEXT NOT NULL,
    purpose TEXT NOT NULL, case_reference TEXT NOT NULL, officer TEXT NOT NULL, message TEXT NOT NULL,
    request_id TEXT NOT NULL, created TEXT NOT NULL, deadline TEXT NOT NULL, status TEXT NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '', decided_at TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',
    fields TEXT NOT NULL DEFAULT '{}'
);
"""


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

    def __init__(self, store: Store, audit: AuditLog) -> None:
        store.add_tables(_SCHEMA)
        self._store = store
        self._audit = audit

    def receive(self, partner: str, agreement: Agreement, key: ServerKey, profile: Profile,
                request: dict[str, Any], now: dt.datetime) -> FollowUp:
        """Check and store a partner's request; raises PermissionDeniedError unless it proves a hit."""
        for name in ("reference", "purpose", "case_reference", "officer", "request_id"):
            if not str(request.get(name, "")).strip():
                raise InputError(f"a follow-up request needs a {name.replace('_', ' ')}")
        if Mode.INTERSECTION not in agreement.modes:
            raise PermissionDeniedError(f"the agreement with '{partner}' does not cover follow-up requests")
        record = _proven_record(partner, key, profile, self._store.records_with_reference(request["reference"]),
                                request)
        self._store.remember_request(partner, request["request_id"])
        row = FollowUp(uuid.uuid4().hex[:16], partner, request["reference"], record.record_id,
                       request["purpose"], request["case_reference"], request["officer"],
                       str(request.get("message", "")), timestamp(now),
                       timestamp(now + dt.timedelta(hours=agreement.followup_reply_hours)), "pending", "", "", "",
                       {})
        self._audit.append(events.followup(row.__dict__, "followup.received", role="server"))
        with self._store.transaction() as db:
            db.execute("INSERT INTO followups VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (row.followup_id, partner, row.reference, row.record_id, row.purpose, row.case_reference,
                        row.officer, row.message, request["request_id"], row.created, row.deadline, row.status,
                        "", "", "", "{}"))
        return row

    def get(self, followup_id: str) -> FollowUp:
        rows = self._store.query(
            "SELECT id, partner, reference, record_id, purpose, case_reference, officer, message, created, "
            "deadline, status, decided_by, decided_at, reason, fields FROM followups WHERE id=?", (followup_id,))
        row = rows[0] if rows else None
        if row is None:
            raise NotFoundError(f"no follow-up request '{followup_id}'")
        names = [f.name for f in dataclasses.fields(FollowUp)]
        return FollowUp(**dict(zip(names[:-1], row[:-1], strict=True)), fields=json.loads(row[-1]))

    def for_partner(self, partner: str, followup_id: str) -> FollowUp:
        """A partner's own request; releasing approved fields is audited as a disclosure."""
        item = self.get(followup_id)
        if item.partner != partner:
            raise NotFoundError(f"no follow-up request '{followup_id}' of '{partner}'")
        if item.status == "approved":
            body = events.followup(item.__dict__, "followup.disclosed", role="server")
            body["fields_released"] = sorted(item.fields)
            self._audit.append(body)
        return item

    def all(self) -> list[FollowUp]:
        ids = [r[0] for r in self._store.query("SELECT id FROM followups ORDER BY created")]
        return [self.get(i) for i in ids]

    def decide(self, followup_id: str, officer: str, *, approve_fields: list[str] | None = None,
               reason: str = "", now: dt.datetime | None = None) -> FollowUp:
        """Approve some fields, or deny with a reason; each request is decided once."""
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
        body.update({"decided_by": officer, "fields_approved": sorted(values), "reason": reason})
        self._audit.append(body)
        with self._store.transaction() as db:
            db.execute("UPDATE followups SET status=?, decided_by=?, decided_at=?, reason=?, fields=? WHERE id=?",
                       (status, officer, decided_at, reason, json.dumps(values, ensure_ascii=False), followup_id))
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
