"""The bodies of the querying side's audit entries: who asked whom, why, and what came back.

Never a raw identifier: hits are named by this agency's own record ids. The entries go to
whatever `AuditSink` the embedding system passes (the node's audit log for `psi match`).
"""

from __future__ import annotations

from typing import Any, Protocol

from psi.client_query import MatchResult
from psi.messages import FollowUpStatus, Mode, Parameters


class AuditSink(Protocol):
    """Where the client writes its audit entries; `append` must not return before the entry is durable."""

    def append(self, body: dict[str, Any]) -> int: ...


def query_made(partner: str, params: Parameters, result: MatchResult, *, purpose: str, case: str,
               operator: str, request_id: str, session_id: str) -> dict[str, Any]:
    """This node queried a partner; hit ids are this node's own record ids."""
    return {"operation": "query.made", "role": "client", "partner": partner, "purpose": purpose,
            "case": case, "operator": operator, "mode": result.mode.value, "suite": params.suite,
            "profile": params.profile_id, "key_epoch": params.key_epoch, "list_id": params.list_id,
            "request_id": request_id, "session_id": session_id, "client_records": result.records,
            "client_elements": result.keys,
            "server_records": params.list_size, "hits": result.hit_records,
            "hit_record_ids": sorted({h.record_id for h in result.hits}), "outcome": "ok", "status": "OK"}


def query_failed(partner: str, *, purpose: str, case: str, operator: str, request_id: str, mode: Mode,
                 status: str, message: str) -> dict[str, Any]:
    return {"operation": "query.made", "role": "client", "partner": partner, "purpose": purpose,
            "case": case, "operator": operator, "mode": mode.value, "request_id": request_id,
            "outcome": "refused", "status": status, "message": message}


def followup_requested(partner: str, status: FollowUpStatus, record_id: str, *, purpose: str, case: str,
                       officer: str) -> dict[str, Any]:
    return {"operation": "followup.requested", "role": "client", "partner": partner,
            "followup_id": status.followup_id, "reference": status.reference, "purpose": purpose, "case": case,
            "operator": officer, "deadline": status.deadline, "hit_record_ids": [record_id], "outcome": "ok",
            "status": "OK"}


def followup_answered(partner: str, status: FollowUpStatus) -> dict[str, Any]:
    """The requester received approved fields (their names only)."""
    return {"operation": "followup.received", "role": "client", "partner": partner,
            "followup_id": status.followup_id, "reference": status.reference, "decided_by": status.decided_by,
            "fields_received": sorted(name for name, _ in status.fields), "outcome": "ok", "status": "OK"}


def bulk_made(partner: str, params: Parameters, result: MatchResult, *, purpose: str, case: str, operator: str,
              request_id: str, session_id: str, correction_bytes: int, result_bytes: int) -> dict[str, Any]:
    """A bulk session completed: as `query_made`, with the bytes each way (`client_elements`: items announced)."""
    return {**query_made(partner, params, result, purpose=purpose, case=case, operator=operator,
                         request_id=request_id, session_id=session_id),
            "suite": params.bulk_suite, "correction_bytes": correction_bytes, "result_bytes": result_bytes,
            "end_state": "completed"}


def bulk_failed(partner: str, *, purpose: str, case: str, operator: str, request_id: str, status: str,
                message: str, end_state: str, session_id: str = "", client_records: int = 0,
                client_elements: int = 0, correction_bytes: int = 0, result_bytes: int = 0) -> dict[str, Any]:
    """A bulk request refused ("refused"), or a session ended without its results: "aborted" here, or "broken"."""
    return {**query_failed(partner, purpose=purpose, case=case, operator=operator, request_id=request_id,
                           mode=Mode.BULK, status=status, message=message),
            "end_state": end_state, "session_id": session_id, "client_records": client_records,
            "client_elements": client_elements, "correction_bytes": correction_bytes, "result_bytes": result_bytes}
