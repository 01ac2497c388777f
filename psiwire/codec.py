"""The one place that converts between core messages and protobuf messages.

Decoding never leaks protobuf's own errors: anything missing or out of range
becomes MalformedMessageError. Every text and bytes field a partner sends is capped here
(`psi.messages.MAX_*`), so nothing unbounded goes further; the refusal names the field,
never its content.
"""

from __future__ import annotations

from psi.errors import MalformedMessageError
from psi.messages import (
    MAX_DIGEST_BYTES,
    MAX_ID_CHARS,
    MAX_NOTE_CHARS,
    MAX_TEXT_CHARS,
    BlindedBatch,
    BulkAccepted,
    BulkChunk,
    BulkClientMessage,
    BulkServerMessage,
    BulkStart,
    ClientMessage,
    Done,
    EvaluatedBatch,
    Finish,
    FollowUpStatus,
    Limits,
    Mode,
    Parameters,
    Progress,
    ServerMessage,
    SessionAccepted,
    SessionStart,
    TagChunk,
)
from psi.tag_sync import TagRequest
from psiwire import matching_pb2 as pb

_MODE_TO_PB = {Mode.INTERSECTION: pb.MODE_INTERSECTION, Mode.CARDINALITY: pb.MODE_CARDINALITY}
_MODE_FROM_PB: dict[int, Mode] = {v: k for k, v in _MODE_TO_PB.items()}


def _capped(value: str, name: str, limit: int) -> str:
    if len(value) > limit:
        raise MalformedMessageError(f"{name} is longer than {limit} characters")
    return value


def _capped_bytes(value: bytes, name: str, limit: int = MAX_DIGEST_BYTES) -> bytes:
    if len(value) > limit:
        raise MalformedMessageError(f"{name} is longer than {limit} bytes")
    return value


def mode_to_pb(mode: Mode) -> pb.Mode:
    return _MODE_TO_PB[mode]


def mode_from_pb(value: int) -> Mode:
    try:
        return _MODE_FROM_PB[value]
    except KeyError:
        raise MalformedMessageError("mode must be MODE_INTERSECTION or MODE_CARDINALITY") from None


def parameters_to_pb(p: Parameters) -> pb.Parameters:
    return pb.Parameters(
        protocol_version=p.protocol_version, suite=p.suite, node_id=p.node_id, list_id=p.list_id,
        key_epoch=p.key_epoch, list_version=p.list_version, list_size=p.list_size,
        tag_count=p.tag_count, tag_length=p.tag_length, profile_id=p.profile_id,
        profile_hash=p.profile_hash, modes=[mode_to_pb(m) for m in p.modes], bulk_suite=p.bulk_suite,
        limits=pb.Limits(
            max_batch_size=p.limits.max_batch_size, max_query_size=p.limits.max_query_size,
            max_message_bytes=p.limits.max_message_bytes, tag_chunk_size=p.limits.tag_chunk_size,
        ),
    )


def parameters_from_pb(m: pb.Parameters) -> Parameters:
    limits = m.limits
    if min(limits.max_batch_size, limits.max_query_size, limits.tag_chunk_size) == 0 or m.tag_length == 0:
        raise MalformedMessageError("parameters lack limits or a tag length")
    return Parameters(
        node_id=m.node_id, list_id=m.list_id, suite=m.suite, key_epoch=m.key_epoch,
        list_version=m.list_version, list_size=m.list_size, tag_count=m.tag_count,
        tag_length=m.tag_length, profile_id=m.profile_id, profile_hash=m.profile_hash,
        modes=tuple(mode_from_pb(v) for v in m.modes),
        limits=Limits(limits.max_batch_size, limits.max_query_size, limits.max_message_bytes,
                      limits.tag_chunk_size),
        protocol_version=m.protocol_version, bulk_suite=_capped(m.bulk_suite, "bulk suite", MAX_ID_CHARS),
    )


def tag_chunk_to_pb(c: TagChunk) -> pb.TagChunk:
    return pb.TagChunk(key_epoch=c.key_epoch, list_version=c.list_version, offset=c.offset,
                       total=c.total, tags=c.tags, labels=list(c.labels), delta=c.delta,
                       removed_tags=c.removed_tags, removed_labels=list(c.removed_labels))


def tag_chunk_from_pb(m: pb.TagChunk) -> TagChunk:
    return TagChunk(m.key_epoch, m.list_version, m.offset, m.total, m.tags, tuple(m.labels), m.delta,
                    m.removed_tags, tuple(m.removed_labels))


def tag_request_to_pb(r: TagRequest, list_id: str = "") -> pb.StreamTagsRequest:
    return pb.StreamTagsRequest(list_id=list_id, mode=mode_to_pb(r.mode), key_epoch=r.key_epoch,
                                list_version=r.list_version, offset=r.offset, since_version=r.since_version,
                                cached_tag_length=r.cached_tag_length)


def list_id_from_pb(m: pb.GetParametersRequest | pb.StreamTagsRequest | pb.FollowUpRequest) -> str:
    return _capped(m.list_id, "list id", MAX_ID_CHARS)


def tag_request_from_pb(m: pb.StreamTagsRequest) -> TagRequest:
    return TagRequest(mode_from_pb(m.mode), m.key_epoch, m.list_version, m.offset, m.since_version,
                      m.cached_tag_length)


def client_message_to_pb(msg: ClientMessage) -> pb.EvaluateRequest:
    if isinstance(msg, SessionStart):
        return pb.EvaluateRequest(start=pb.SessionStart(
            list_id=msg.list_id, mode=mode_to_pb(msg.mode), key_epoch=msg.key_epoch,
            profile_id=msg.profile_id, profile_hash=msg.profile_hash,
            total_elements=msg.total_elements, group_size=msg.group_size, purpose=msg.purpose,
            case_reference=msg.case_reference, operator=msg.operator, request_id=msg.request_id,
        ))
    if isinstance(msg, BlindedBatch):
        return pb.EvaluateRequest(batch=pb.BlindedBatch(index=msg.index, elements=msg.elements))
    return pb.EvaluateRequest(finish=pb.Finish())


def client_message_from_pb(m: pb.EvaluateRequest) -> ClientMessage:
    step = m.WhichOneof("step")
    if step == "start":
        s = m.start
        return SessionStart(_capped(s.list_id, "list id", MAX_ID_CHARS), mode_from_pb(s.mode), s.key_epoch,
                            _capped(s.profile_id, "profile id", MAX_ID_CHARS),
                            _capped_bytes(s.profile_hash, "profile hash"), s.total_elements, s.group_size,
                            _capped(s.purpose, "purpose", MAX_TEXT_CHARS),
                            _capped(s.case_reference, "case reference", MAX_TEXT_CHARS),
                            _capped(s.operator, "operator", MAX_TEXT_CHARS),
                            _capped(s.request_id, "request id", MAX_ID_CHARS))
    if step == "batch":
        return BlindedBatch(m.batch.index, m.batch.elements)
    if step == "finish":
        return Finish()
    raise MalformedMessageError("an EvaluateRequest must hold start, batch or finish")


def server_message_to_pb(msg: ServerMessage) -> pb.EvaluateResponse:
    if isinstance(msg, SessionAccepted):
        return pb.EvaluateResponse(accepted=pb.SessionAccepted(session_id=msg.session_id,
                                                               key_epoch=msg.key_epoch))
    if isinstance(msg, EvaluatedBatch):
        return pb.EvaluateResponse(batch=pb.EvaluatedBatch(index=msg.index, elements=msg.elements))
    if isinstance(msg, Progress):
        return pb.EvaluateResponse(progress=pb.Progress(received=msg.received, total=msg.total))
    return pb.EvaluateResponse(done=pb.Done(evaluated=msg.evaluated))


def server_message_from_pb(m: pb.EvaluateResponse) -> ServerMessage:
    step = m.WhichOneof("step")
    if step == "accepted":
        return SessionAccepted(m.accepted.session_id, m.accepted.key_epoch)
    if step == "batch":
        return EvaluatedBatch(m.batch.index, m.batch.elements)
    if step == "progress":
        return Progress(m.progress.received, m.progress.total)
    if step == "done":
        return Done(m.done.evaluated)
    raise MalformedMessageError("an EvaluateResponse must hold accepted, batch, progress or done")


def followup_request_from_pb(m: pb.FollowUpRequest) -> dict[str, str | bytes]:
    """A partner's follow-up request as `server.followups.FollowUpDesk.receive` takes it."""
    return {"reference": _capped(m.reference, "reference", MAX_TEXT_CHARS),
            "purpose": _capped(m.purpose, "purpose", MAX_TEXT_CHARS),
            "case_reference": _capped(m.case_reference, "case reference", MAX_TEXT_CHARS),
            "officer": _capped(m.officer, "officer", MAX_TEXT_CHARS),
            "message": _capped(m.message, "message", MAX_NOTE_CHARS),
            "request_id": _capped(m.request_id, "request id", MAX_ID_CHARS),
            "proof": _capped_bytes(m.proof, "proof")}


def followup_id_from_pb(m: pb.GetFollowUpRequest) -> str:
    return _capped(m.followup_id, "follow-up id", MAX_ID_CHARS)


def followup_status_to_pb(s: FollowUpStatus) -> pb.FollowUpStatus:
    return pb.FollowUpStatus(followup_id=s.followup_id, status=s.status, deadline=s.deadline, overdue=s.overdue,
                             fields=[pb.FollowUpField(name=n, value=v) for n, v in s.fields], reason=s.reason,
                             reference=s.reference, decided_by=s.decided_by)


def followup_status_from_pb(m: pb.FollowUpStatus) -> FollowUpStatus:
    return FollowUpStatus(m.followup_id, m.status, m.deadline, m.overdue, m.reference,
                          tuple((f.name, f.value) for f in m.fields), m.reason, m.decided_by)


def bulk_client_message_to_pb(msg: BulkClientMessage) -> pb.BulkRequest:
    if isinstance(msg, BulkStart):
        return pb.BulkRequest(start=pb.BulkStart(
            list_id=msg.list_id, key_epoch=msg.key_epoch, profile_id=msg.profile_id,
            profile_hash=msg.profile_hash, purpose=msg.purpose, case_reference=msg.case_reference,
            operator=msg.operator, request_id=msg.request_id, suite=msg.suite, hello=msg.hello))
    if isinstance(msg, BulkChunk):
        return pb.BulkRequest(correction=pb.BulkCorrection(index=msg.index, data=msg.data))
    return pb.BulkRequest(finish=pb.Finish())


def bulk_client_message_from_pb(m: pb.BulkRequest) -> BulkClientMessage:
    """A BulkMatch request; text fields capped as SessionStart's are (the hello's size is the message limit's)."""
    step = m.WhichOneof("step")
    if step == "start":
        s = m.start
        return BulkStart(_capped(s.list_id, "list id", MAX_ID_CHARS), s.key_epoch,
                         _capped(s.profile_id, "profile id", MAX_ID_CHARS),
                         _capped_bytes(s.profile_hash, "profile hash"),
                         _capped(s.purpose, "purpose", MAX_TEXT_CHARS),
                         _capped(s.case_reference, "case reference", MAX_TEXT_CHARS),
                         _capped(s.operator, "operator", MAX_TEXT_CHARS),
                         _capped(s.request_id, "request id", MAX_ID_CHARS),
                         _capped(s.suite, "suite", MAX_ID_CHARS), s.hello)
    if step == "correction":
        return BulkChunk(m.correction.index, m.correction.data)
    if step == "finish":
        return Finish()
    raise MalformedMessageError("a BulkRequest must hold start, correction or finish")


def bulk_server_message_to_pb(msg: BulkServerMessage) -> pb.BulkResponse:
    if isinstance(msg, BulkAccepted):
        return pb.BulkResponse(accepted=pb.BulkAccepted(
            session_id=msg.session_id, key_epoch=msg.key_epoch, setup=msg.setup,
            correction_bytes=msg.correction_bytes, result_count=msg.result_count,
            list_version=msg.list_version, max_chunk_bytes=msg.max_chunk_bytes))
    if isinstance(msg, Progress):
        return pb.BulkResponse(progress=pb.Progress(received=msg.received, total=msg.total))
    if isinstance(msg, BulkChunk):
        return pb.BulkResponse(results=pb.BulkResults(index=msg.index, data=msg.data))
    return pb.BulkResponse(done=pb.Done(evaluated=msg.evaluated))


def bulk_server_message_from_pb(m: pb.BulkResponse) -> BulkServerMessage:
    step = m.WhichOneof("step")
    if step == "accepted":
        a = m.accepted
        return BulkAccepted(_capped(a.session_id, "session id", MAX_ID_CHARS), a.key_epoch, a.setup,
                            a.correction_bytes, a.result_count, a.list_version, a.max_chunk_bytes)
    if step == "progress":
        return Progress(m.progress.received, m.progress.total)
    if step == "results":
        return BulkChunk(m.results.index, m.results.data)
    if step == "done":
        return Done(m.done.evaluated)
    raise MalformedMessageError("a BulkResponse must hold accepted, progress, results or done")
