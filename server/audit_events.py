"""The bodies of the answering node's and the list owner's audit entries, never a raw identifier.

Fields follow the LED (EU 2016/680) Article 25 logging duties: justification
(purpose, case), date and time (added by the log), who consulted (partner
from its certificate, operator) and the recipients (partner).
"""

from __future__ import annotations

from typing import Any

from psi.messages import BulkStart, Mode, Parameters, SessionStart

_MAX_MESSAGE_CHARS = 1024  # of a refusal's message: the codec caps each field, this caps their sum


def _start_fields(start: SessionStart | None) -> dict[str, Any]:
    """What a partner asked for (each field capped at decoding, `psiwire.codec`)."""
    if start is None:
        return {}
    return {"purpose": start.purpose, "case": start.case_reference, "operator": start.operator,
            "mode": start.mode.value, "profile": start.profile_id, "key_epoch": start.key_epoch,
            "request_id": start.request_id, "client_elements": start.total_elements}


def query_served(partner: str, start: SessionStart, params: Parameters, session_id: str) -> dict[str, Any]:
    """The server disclosed evaluations of a partner's blinded elements (consultation by the partner)."""
    return {"operation": "query.served", "role": "server", "partner": partner, **_start_fields(start),
            "suite": params.suite, "list_id": params.list_id, "server_records": params.list_size,
            "server_tags": params.tag_count, "session_id": session_id, "outcome": "ok", "status": "OK"}


def tags_served(partner: str, mode: Mode, params: Parameters, offset: int, since_version: int = 0
                ) -> dict[str, Any]:
    """The server sent its tag set (and sealed labels in intersection mode), or its changes, to a partner."""
    return {"operation": "tags.served", "role": "server", "partner": partner, "mode": mode.value,
            "suite": params.suite, "profile": params.profile_id, "key_epoch": params.key_epoch,
            "list_id": params.list_id, "server_records": params.list_size, "server_tags": params.tag_count,
            "offset": offset, "since_version": since_version, "outcome": "ok", "status": "OK"}


def refused(partner: str, rpc: str, status: str, message: str, start: SessionStart | None = None,
            session_id: str = "") -> dict[str, Any]:
    return {"operation": "request.refused", "role": "server", "partner": partner, "rpc": rpc,
            **_start_fields(start), "session_id": session_id, "outcome": "refused", "status": status,
            "message": message[:_MAX_MESSAGE_CHARS]}


def watchlist_changed(operation: str, operator: str, list_id: str, *, added: int = 0, updated: int = 0,
                      unchanged: int = 0, erased: int = 0, erased_ids: list[str] | None = None,
                      justification: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"operation": operation, "role": "owner", "operator": operator, "list_id": list_id,
                            "justification": justification, "added": added, "updated": updated,
                            "unchanged": unchanged, "erased": erased, "outcome": "ok", "status": "OK"}
    if erased_ids is not None:
        body["erased_record_ids"] = sorted(erased_ids)
    return body


def policy_changed(partners: list[str], digest: str, operator: str, justification: str = "") -> dict[str, Any]:
    """The node started with other agreements than before: who started it, and why."""
    return {"operation": "policy.change", "role": "owner", "operator": operator, "justification": justification,
            "partners": partners, "policy_hash": digest, "outcome": "ok", "status": "OK"}


def key_rotated(operator: str, old_epoch: int, new_epoch: int, tags_computed: int) -> dict[str, Any]:
    return {"operation": "key.rotate", "role": "owner", "operator": operator, "old_epoch": old_epoch,
            "new_epoch": new_epoch, "tags_computed": tags_computed, "outcome": "ok", "status": "OK"}


def followup(item: dict[str, Any], operation: str, role: str) -> dict[str, Any]:
    """A follow-up step; the free-text message is not logged (it may name a person), only its length."""
    body = {"operation": operation, "role": role, "partner": item["partner"], "followup_id": item["followup_id"],
            "reference": item["reference"], "purpose": item["purpose"], "case": item["case_reference"],
            "operator": item["officer"], "message_chars": len(item.get("message", "")), "deadline": item["deadline"],
            "outcome": "ok", "status": "OK"}
    if role == "server":
        body["hit_record_ids"] = [item["record_id"]]
    return body


def key_lifecycle(operation: str, operator: str, epoch: int, fingerprint: str) -> dict[str, Any]:
    """A key created, adopted from an older store, or found unusable (operation key.*)."""
    return {"operation": operation, "role": "owner", "operator": operator, "key_epoch": epoch,
            "key_fingerprint": fingerprint, "outcome": "ok", "status": "OK"}


def node_not_serving(reason: str) -> dict[str, Any]:
    """The node stopped answering partners because it could not answer them correctly."""
    return {"operation": "node.not_serving", "role": "owner", "outcome": "refused", "status": "UNAVAILABLE",
            "message": reason}


def recovered(operation: str, op_id: str, committed: bool) -> dict[str, Any]:
    """At start-up: the outcome of an operation whose process died between its intent and its outcome."""
    return {"operation": operation, "role": "owner", "recovered": True, "committed": committed}


def list_change_intent(operation: str, operator: str, list_id: str, records: int,
                       justification: str = "") -> dict[str, Any]:
    """A list change about to start: how many records it names (its outcome says what changed)."""
    return {"operation": operation, "role": "owner", "operator": operator, "list_id": list_id,
            "justification": justification, "records": records, "status": "OK"}


# Bulk mode (BulkMatch): one entry per session. `query.served` once the results are released (written
# before the first is sent), else `request.refused` with how the session ended (`end_state`).

def _bulk_fields(start: BulkStart | None, items: int) -> dict[str, Any]:
    if start is None:
        return {}
    return {"purpose": start.purpose, "case": start.case_reference, "operator": start.operator,
            "mode": Mode.BULK.value, "profile": start.profile_id, "key_epoch": start.key_epoch,
            "request_id": start.request_id, "client_elements": items}


def bulk_served(partner: str, start: BulkStart, items: int, params: Parameters, session_id: str, *,
                list_version: int, server_entries: int, correction_bytes: int) -> dict[str, Any]:
    """The server releases a bulk session's results to a partner (its `items` are the budget's count)."""
    return {"operation": "query.served", "role": "server", "partner": partner, **_bulk_fields(start, items),
            "suite": start.suite, "list_id": params.list_id, "list_version": list_version,
            "server_records": params.list_size, "server_tags": server_entries,
            "correction_bytes": correction_bytes, "session_id": session_id, "end_state": "completed",
            "outcome": "ok", "status": "OK"}


def bulk_refused(partner: str, status: str, message: str, start: BulkStart | None, items: int, session_id: str,
                 *, end_state: str = "", correction_bytes: int = 0) -> dict[str, Any]:
    """A bulk request refused at admission, or a session that ended without results.

    `end_state` (sessions only): "aborted" (the client ended its stream before finish) or "broken"
    (the call was cut, stalled, or a message was refused); `correction_bytes` is what the server took.
    """
    body = {"operation": "request.refused", "role": "server", "partner": partner, "rpc": "BulkMatch",
            **_bulk_fields(start, items), "session_id": session_id, "outcome": "refused", "status": status,
            "message": message[:_MAX_MESSAGE_CHARS]}
    if end_state:
        body |= {"end_state": end_state, "correction_bytes": correction_bytes}
    return body
