"""The protocol's messages as plain data; `psiwire.codec` maps them to protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Mode(StrEnum):
    INTERSECTION = "intersection"
    CARDINALITY = "cardinality"
    BULK = "bulk"  # the BulkMatch call (an OT-extension OPRF), not Evaluate or StreamTags


PROTOCOL_VERSION = 1

# Caps on what a partner may send in a text or bytes field, checked when a message is decoded
# (psiwire.codec): nothing unbounded reaches a refusal, a log line or an audit entry.
MAX_ID_CHARS = 128  # list, profile, request and follow-up ids
MAX_TEXT_CHARS = 512  # purpose, case reference, operator, officer, reference (records.MAX_FIELD_CHARS)
MAX_NOTE_CHARS = 4000  # the free-text message of a follow-up request
MAX_DIGEST_BYTES = 64  # profile hash, follow-up proof


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = 4096  # blinded elements per batch message
    max_query_size: int = 1 << 20  # blinded elements per session
    max_message_bytes: int = 4 << 20
    tag_chunk_size: int = 65536  # tags per TagChunk


@dataclass(frozen=True)
class Parameters:
    """What a server announces before any exchange."""

    node_id: str
    list_id: str
    suite: str
    key_epoch: int
    list_version: int
    list_size: int
    tag_count: int
    tag_length: int
    profile_id: str
    profile_hash: bytes
    modes: tuple[Mode, ...]
    limits: Limits = field(default_factory=Limits)
    protocol_version: int = PROTOCOL_VERSION
    bulk_suite: str = ""  # the bulk-mode suite when the node answers BulkMatch


@dataclass(frozen=True)
class SessionStart:
    list_id: str
    mode: Mode
    key_epoch: int
    profile_id: str
    profile_hash: bytes
    total_elements: int
    group_size: int
    purpose: str
    case_reference: str
    operator: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class BlindedBatch:
    index: int
    elements: bytes  # packed 32-byte ristretto255 encodings


@dataclass(frozen=True)
class Finish:
    pass


@dataclass(frozen=True)
class SessionAccepted:
    session_id: str
    key_epoch: int


@dataclass(frozen=True)
class EvaluatedBatch:
    index: int
    elements: bytes


@dataclass(frozen=True)
class Progress:
    received: int
    total: int


@dataclass(frozen=True)
class Done:
    evaluated: int


ClientMessage = SessionStart | BlindedBatch | Finish
ServerMessage = SessionAccepted | EvaluatedBatch | Progress | Done


@dataclass(frozen=True)
class TagChunk:
    key_epoch: int
    list_version: int
    offset: int
    total: int
    tags: bytes
    labels: tuple[bytes, ...] = ()
    delta: bool = False  # tags/labels are additions since the client's version
    removed_tags: bytes = b""
    removed_labels: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class FollowUpStatus:
    """What the requester of a follow-up sees."""

    followup_id: str
    status: str  # pending | approved | denied
    deadline: str
    overdue: bool
    reference: str
    fields: tuple[tuple[str, str], ...] = ()  # approved fields, once approved
    reason: str = ""
    decided_by: str = ""


# Bulk mode (the BulkMatch call): the exchange of `psi.bulk`'s messages, carried as opaque bytes.


@dataclass(frozen=True)
class BulkStart:
    list_id: str
    key_epoch: int
    profile_id: str
    profile_hash: bytes
    purpose: str
    case_reference: str
    operator: str
    request_id: str
    suite: str
    hello: bytes = field(repr=False)


@dataclass(frozen=True)
class BulkChunk:
    """One chunk of the receiver's corrections, or of the sender's results, by its index (0, 1, ...)."""

    index: int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class BulkAccepted:
    session_id: str
    key_epoch: int
    setup: bytes = field(repr=False)
    correction_bytes: int = 0
    result_count: int = 0
    list_version: int = 0
    max_chunk_bytes: int = 0


BulkClientMessage = BulkStart | BulkChunk | Finish
BulkServerMessage = BulkAccepted | Progress | BulkChunk | Done
