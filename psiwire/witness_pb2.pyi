from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AddCheckpointRequest(_message.Message):
    __slots__ = ("log_public_key", "old_size", "size", "head", "time", "signature", "proof")
    LOG_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    log_public_key: str
    old_size: int
    size: int
    head: bytes
    time: str
    signature: bytes
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, log_public_key: _Optional[str] = ..., old_size: _Optional[int] = ..., size: _Optional[int] = ..., head: _Optional[bytes] = ..., time: _Optional[str] = ..., signature: _Optional[bytes] = ..., proof: _Optional[_Iterable[bytes]] = ...) -> None: ...

class AddCheckpointResponse(_message.Message):
    __slots__ = ("known_size", "witness", "witness_public_key", "timestamp", "cosignature")
    KNOWN_SIZE_FIELD_NUMBER: _ClassVar[int]
    WITNESS_FIELD_NUMBER: _ClassVar[int]
    WITNESS_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    COSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    known_size: int
    witness: str
    witness_public_key: str
    timestamp: int
    cosignature: bytes
    def __init__(self, known_size: _Optional[int] = ..., witness: _Optional[str] = ..., witness_public_key: _Optional[str] = ..., timestamp: _Optional[int] = ..., cosignature: _Optional[bytes] = ...) -> None: ...
