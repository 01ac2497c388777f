from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_INTERSECTION: _ClassVar[Mode]
    MODE_CARDINALITY: _ClassVar[Mode]
    MODE_BULK: _ClassVar[Mode]
MODE_UNSPECIFIED: Mode
MODE_INTERSECTION: Mode
MODE_CARDINALITY: Mode
MODE_BULK: Mode

class GetParametersRequest(_message.Message):
    __slots__ = ("list_id",)
    LIST_ID_FIELD_NUMBER: _ClassVar[int]
    list_id: str
    def __init__(self, list_id: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_batch_size", "max_query_size", "max_message_bytes", "tag_chunk_size")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUERY_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TAG_CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_query_size: int
    max_message_bytes: int
    tag_chunk_size: int
    def __init__(self, max_batch_size: _Optional[int] = ..., max_query_size: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., tag_chunk_size: _Optional[int] = ...) -> None: ...

class Parameters(_message.Message):
    __slots__ = ("protocol_version", "suite", "node_id", "list_id", "key_epoch", "list_version", "list_size", "tag_count", "tag_length", "profile_id", "profile_hash", "modes", "limits", "bulk_suite")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUITE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LIST_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LIST_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIST_SIZE_FIELD_NUMBER: _ClassVar[int]
    TAG_COUNT_FIELD_NUMBER: _ClassVar[int]
    TAG_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_HASH_FIELD_NUMBER: _ClassVar[int]
    MODES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    BULK_SUITE_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    suite: str
    node_id: str
    list_id: str
    key_epoch: int
    list_version: int
    list_size: int
    tag_count: int
    tag_length: int
    profile_id: str
    profile_hash: bytes
    modes: _containers.RepeatedScalarFieldContainer[Mode]
    limits: Limits
    bulk_suite: str
    def __init__(self, protocol_version: _Optional[int] = ..., suite: _Optional[str] = ..., node_id: _Optional[str] = ..., list_id: _Optional[str] = ..., key_epoch: _Optional[int] = ..., list_version: _Optional[int] = ..., list_size: _Optional[int] = ..., tag_count: _Optional[int] = ..., tag_length: _Optional[int] = ..., profile_id: _Optional[str] = ..., profile_hash: _Optional[bytes] = ..., modes: _Optional[_Iterable[_Union[Mode, str]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., bulk_suite: _Optional[str] = ...) -> None: ...

class StreamTagsRequest(_message.Message):
    __slots__ = ("list_id", "mode", "key_epoch", "list_version", "offset", "since_version", "cached_tag_length")
    LIST_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    KEY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LIST_VERSION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SINCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CACHED_TAG_LENGTH_FIELD_NUMBER: _ClassVar[int]
    list_id: str
    mode: Mode
    key_epoch: int
    list_version: int
    offset: int
    since_version: int
    cached_tag_length: int
    def __init__(self, list_id: _Optional[str] = ..., mode: _Optional[_Union[Mode, str]] = ..., key_epoch: _Optional[int] = ..., list_version: _Optional[int] = ..., offset: _Optional[int] = ..., since_version: _Optional[int] = ..., cached_tag_length: _Optional[int] = ...) -> None: ...

class TagChunk(_message.Message):
    __slots__ = ("key_epoch", "list_version", "offset", "total", "tags", "labels", "delta", "removed_tags", "removed_labels")
    KEY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LIST_VERSION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    REMOVED_TAGS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_LABELS_FIELD_NUMBER: _ClassVar[int]
    key_epoch: int
    list_version: int
    offset: int
    total: int
    tags: bytes
    labels: _containers.RepeatedScalarFieldContainer[bytes]
    delta: bool
    removed_tags: bytes
    removed_labels: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, key_epoch: _Optional[int] = ..., list_version: _Optional[int] = ..., offset: _Optional[int] = ..., total: _Optional[int] = ..., tags: _Optional[bytes] = ..., labels: _Optional[_Iterable[bytes]] = ..., delta: _Optional[bool] = ..., removed_tags: _Optional[bytes] = ..., removed_labels: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SessionStart(_message.Message):
    __slots__ = ("list_id", "mode", "key_epoch", "profile_id", "profile_hash", "total_elements", "group_size", "purpose", "case_reference", "operator", "request_id")
    LIST_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    KEY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_HASH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    list_id: str
    mode: Mode
    key_epoch: int
    profile_id: str
    profile_hash: bytes
    total_elements: int
    group_size: int
    purpose: str
    case_reference: str
    operator: str
    request_id: str
    def __init__(self, list_id: _Optional[str] = ..., mode: _Optional[_Union[Mode, str]] = ..., key_epoch: _Optional[int] = ..., profile_id: _Optional[str] = ..., profile_hash: _Optional[bytes] = ..., total_elements: _Optional[int] = ..., group_size: _Optional[int] = ..., purpose: _Optional[str] = ..., case_reference: _Optional[str] = ..., operator: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class BlindedBatch(_message.Message):
    __slots__ = ("index", "elements")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    index: int
    elements: bytes
    def __init__(self, index: _Optional[int] = ..., elements: _Optional[bytes] = ...) -> None: ...

class Finish(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("start", "batch", "finish")
    START_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    start: SessionStart
    batch: BlindedBatch
    finish: Finish
    def __init__(self, start: _Optional[_Union[SessionStart, _Mapping]] = ..., batch: _Optional[_Union[BlindedBatch, _Mapping]] = ..., finish: _Optional[_Union[Finish, _Mapping]] = ...) -> None: ...

class SessionAccepted(_message.Message):
    __slots__ = ("session_id", "key_epoch")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    key_epoch: int
    def __init__(self, session_id: _Optional[str] = ..., key_epoch: _Optional[int] = ...) -> None: ...

class EvaluatedBatch(_message.Message):
    __slots__ = ("index", "elements")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    index: int
    elements: bytes
    def __init__(self, index: _Optional[int] = ..., elements: _Optional[bytes] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("received", "total")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    received: int
    total: int
    def __init__(self, received: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class Done(_message.Message):
    __slots__ = ("evaluated",)
    EVALUATED_FIELD_NUMBER: _ClassVar[int]
    evaluated: int
    def __init__(self, evaluated: _Optional[int] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("accepted", "batch", "progress", "done")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    accepted: SessionAccepted
    batch: EvaluatedBatch
    progress: Progress
    done: Done
    def __init__(self, accepted: _Optional[_Union[SessionAccepted, _Mapping]] = ..., batch: _Optional[_Union[EvaluatedBatch, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., done: _Optional[_Union[Done, _Mapping]] = ...) -> None: ...

class FollowUpRequest(_message.Message):
    __slots__ = ("list_id", "reference", "purpose", "case_reference", "officer", "message", "request_id", "proof")
    LIST_ID_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    OFFICER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    list_id: str
    reference: str
    purpose: str
    case_reference: str
    officer: str
    message: str
    request_id: str
    proof: bytes
    def __init__(self, list_id: _Optional[str] = ..., reference: _Optional[str] = ..., purpose: _Optional[str] = ..., case_reference: _Optional[str] = ..., officer: _Optional[str] = ..., message: _Optional[str] = ..., request_id: _Optional[str] = ..., proof: _Optional[bytes] = ...) -> None: ...

class GetFollowUpRequest(_message.Message):
    __slots__ = ("followup_id",)
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    followup_id: str
    def __init__(self, followup_id: _Optional[str] = ...) -> None: ...

class FollowUpField(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class FollowUpStatus(_message.Message):
    __slots__ = ("followup_id", "status", "deadline", "overdue", "fields", "reason", "reference", "decided_by")
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    followup_id: str
    status: str
    deadline: str
    overdue: bool
    fields: _containers.RepeatedCompositeFieldContainer[FollowUpField]
    reason: str
    reference: str
    decided_by: str
    def __init__(self, followup_id: _Optional[str] = ..., status: _Optional[str] = ..., deadline: _Optional[str] = ..., overdue: _Optional[bool] = ..., fields: _Optional[_Iterable[_Union[FollowUpField, _Mapping]]] = ..., reason: _Optional[str] = ..., reference: _Optional[str] = ..., decided_by: _Optional[str] = ...) -> None: ...

class BulkStart(_message.Message):
    __slots__ = ("list_id", "key_epoch", "profile_id", "profile_hash", "purpose", "case_reference", "operator", "request_id", "suite", "hello")
    LIST_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_HASH_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUITE_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    list_id: str
    key_epoch: int
    profile_id: str
    profile_hash: bytes
    purpose: str
    case_reference: str
    operator: str
    request_id: str
    suite: str
    hello: bytes
    def __init__(self, list_id: _Optional[str] = ..., key_epoch: _Optional[int] = ..., profile_id: _Optional[str] = ..., profile_hash: _Optional[bytes] = ..., purpose: _Optional[str] = ..., case_reference: _Optional[str] = ..., operator: _Optional[str] = ..., request_id: _Optional[str] = ..., suite: _Optional[str] = ..., hello: _Optional[bytes] = ...) -> None: ...

class BulkCorrection(_message.Message):
    __slots__ = ("index", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    data: bytes
    def __init__(self, index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class BulkRequest(_message.Message):
    __slots__ = ("start", "correction", "finish")
    START_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    start: BulkStart
    correction: BulkCorrection
    finish: Finish
    def __init__(self, start: _Optional[_Union[BulkStart, _Mapping]] = ..., correction: _Optional[_Union[BulkCorrection, _Mapping]] = ..., finish: _Optional[_Union[Finish, _Mapping]] = ...) -> None: ...

class BulkAccepted(_message.Message):
    __slots__ = ("session_id", "key_epoch", "setup", "correction_bytes", "result_count", "list_version", "max_chunk_bytes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SETUP_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESULT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LIST_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    key_epoch: int
    setup: bytes
    correction_bytes: int
    result_count: int
    list_version: int
    max_chunk_bytes: int
    def __init__(self, session_id: _Optional[str] = ..., key_epoch: _Optional[int] = ..., setup: _Optional[bytes] = ..., correction_bytes: _Optional[int] = ..., result_count: _Optional[int] = ..., list_version: _Optional[int] = ..., max_chunk_bytes: _Optional[int] = ...) -> None: ...

class BulkResults(_message.Message):
    __slots__ = ("index", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    data: bytes
    def __init__(self, index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class BulkResponse(_message.Message):
    __slots__ = ("accepted", "progress", "results", "done")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    accepted: BulkAccepted
    progress: Progress
    results: BulkResults
    done: Done
    def __init__(self, accepted: _Optional[_Union[BulkAccepted, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., results: _Optional[_Union[BulkResults, _Mapping]] = ..., done: _Optional[_Union[Done, _Mapping]] = ...) -> None: ...
