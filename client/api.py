"""The Python API agency systems use to match against a partner node.

    with MatchClient("partner.example:50051", ClientTls(ca, cert, key)) as client:
        result = client.match(records, purpose="...", case_reference="...")

Raises PsiError subclasses only: RemoteError for a refused call (with the
gRPC status name), ParameterMismatchError when the partner's suite or
profile differ, StaleStateError when its key rotated mid-exchange.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID
from google.protobuf.message import Message

from client import audit_events as events
from client.audit_events import AuditSink
from client.tag_cache import CachedTags, TagCache
from psi import followup
from psi.client_query import CardinalityQuery, Hit, IntersectionQuery, MatchResult
from psi.errors import (
    InputError,
    MalformedMessageError,
    ParameterMismatchError,
    PsiError,
    RemoteError,
    StaleStateError,
)
from psi.messages import (
    ClientMessage,
    EvaluatedBatch,
    Finish,
    FollowUpStatus,
    Mode,
    Parameters,
    Progress,
    SessionAccepted,
    TagChunk,
)
from psi.profiles import PROFILES, Profile
from psi.records import Record
from psi.tagset import TagIndex, apply_delta
from psiwire import codec
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total)
M = TypeVar("M", bound=Message)
_RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_MAX_RESUMES = 3


@dataclass(frozen=True)
class ClientTls:
    """This agency's certificate and key, and the CA that signs partner certificates."""

    ca: Path
    cert: Path
    key: Path

    def credentials(self) -> grpc.ChannelCredentials:
        try:
            return grpc.ssl_channel_credentials(
                root_certificates=self.ca.read_bytes(),
                private_key=self.key.read_bytes(),
                certificate_chain=self.cert.read_bytes(),
            )
        except OSError as exc:
            raise InputError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None

    def identity(self) -> str:
        """This agency's name as partners see it: the common name of its certificate."""
        try:
            cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the certificate {self.cert}: {exc}") from None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names:
            raise InputError(f"the certificate {self.cert} has no common name")
        return str(names[0].value)


def _remote(exc: grpc.RpcError) -> RemoteError:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    return RemoteError(code.name, details or "no details")


def wait_for_node(target: str, tls: ClientTls, *, seconds: float = 60.0,
                  alive: Callable[[], bool] = lambda: True) -> None:
    """Block until the node at `target` answers GetParameters; raise RemoteError after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        if not alive():
            raise RemoteError("UNAVAILABLE", f"the node at {target} is not running")
        try:
            with MatchClient(target, tls) as client:
                client.parameters()
                return
        except RemoteError as exc:
            if exc.status != "UNAVAILABLE" or time.monotonic() > deadline:
                raise  # a refusal will not go away by waiting
            time.sleep(0.2)


@dataclass
class Traffic:
    """Protobuf payload bytes this client sent and received (gRPC and TLS framing not counted)."""

    sent: int = 0
    received: int = 0


class MatchClient:
    """One mutual-TLS channel to one partner node."""

    def __init__(self, target: str, tls: ClientTls, *, server_name: str | None = None,
                 timeout: float = 3600.0, cache_dir: Path | None = None) -> None:
        options: list[tuple[str, int | str]] = [("grpc.max_receive_message_length", 64 << 20)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self._channel = grpc.secure_channel(target, tls.credentials(), options=options)
        self._stub = pb_grpc.MatchingStub(self._channel)
        self._timeout = timeout
        self._target = target
        self._identity = tls.identity()
        self._cache = TagCache(cache_dir) if cache_dir else None
        self._indexes: dict[tuple[str, str, Mode], tuple[CachedTags, TagIndex]] = {}  # warm, in this process
        self.traffic = Traffic()

    def __enter__(self) -> MatchClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _count(self, message: M) -> M:
        self.traffic.received += message.ByteSize()
        return message

    def parameters(self, list_id: str = "") -> Parameters:
        try:
            reply = self._stub.GetParameters(pb.GetParametersRequest(list_id=list_id), timeout=60)
        except grpc.RpcError as exc:
            raise _remote(exc) from None
        return codec.parameters_from_pb(reply)

    def fetch_tags(self, params: Parameters, mode: Mode,
                   progress: ProgressCallback | None = None) -> TagIndex:
        """The partner's tag set for this epoch.

        With a cache, an unchanged set costs no transfer and a changed one only its changes;
        a full transfer resumes from the last offset if the stream drops.
        """
        slot = (params.node_id, params.list_id, mode)
        held = self._indexes.get(slot)
        if held and (held[0].key_epoch, held[0].tag_length, held[0].list_version) == (
                params.key_epoch, params.tag_length, params.list_version):
            return held[1]  # this process already holds exactly this set
        cached = held[0] if held else (self._cache.load(*slot) if self._cache else None)
        if cached and (cached.key_epoch, cached.tag_length) != (params.key_epoch, params.tag_length):
            cached = None  # another epoch or tag length: its tags are of no use
        if cached and cached.list_version == params.list_version:
            tags, labels, version = cached.tags, cached.labels, cached.list_version
        else:
            tags, labels, version = self._stream_tags(params, mode, cached, progress)
        fresh = CachedTags(params.node_id, params.list_id, mode, params.key_epoch, version, params.tag_length,
                           tags, labels)
        if self._cache and fresh != cached:
            self._cache.save(fresh)
        index = TagIndex(tags, params.tag_length, labels if mode is Mode.INTERSECTION else ())
        self._indexes[slot] = (fresh, index)
        return index

    def _stream_tags(self, params: Parameters, mode: Mode, cached: CachedTags | None,
                     progress: ProgressCallback | None) -> tuple[bytes, Sequence[bytes], int]:
        tags = bytearray()
        labels: list[bytes] = []
        received = version = 0
        total = params.tag_count
        since = cached.list_version if cached else 0
        for attempt in itertools.count():
            request = pb.StreamTagsRequest(list_id=params.list_id, mode=codec.mode_to_pb(mode),
                                           key_epoch=params.key_epoch, list_version=version, offset=received,
                                           since_version=since, cached_tag_length=params.tag_length)
            try:
                self.traffic.sent += request.ByteSize()
                chunks = (codec.tag_chunk_from_pb(self._count(m))
                          for m in self._stub.StreamTags(request, timeout=self._timeout))
                deltas: list[TagChunk] = []
                for chunk in chunks:
                    if chunk.key_epoch != params.key_epoch:
                        raise StaleStateError("the partner's key epoch changed; match again")
                    if chunk.delta and cached:
                        deltas.append(chunk)
                        continue
                    if chunk.offset != received:
                        raise MalformedMessageError(f"tag chunk at offset {chunk.offset}, expected {received}")
                    version, total = chunk.list_version, chunk.total
                    tags += chunk.tags
                    labels.extend(chunk.labels)
                    received += len(chunk.tags) // params.tag_length
                    if progress:
                        progress("tags", received, total)
                if cached and deltas:
                    merged, merged_labels = apply_delta(cached.tags, cached.labels, params.tag_length, deltas)
                    if len(merged) // params.tag_length != deltas[0].total:
                        raise MalformedMessageError("the partner's changes do not add up to its tag count")
                    if progress:
                        progress("tags", deltas[0].total, deltas[0].total)
                    return merged, merged_labels, deltas[0].list_version
                break
            except grpc.RpcError as exc:
                if exc.code() not in _RESUMABLE or attempt >= _MAX_RESUMES:
                    raise _remote(exc) from None
                since = 0 if received else since  # a broken full transfer resumes as a full one
        if received != total:
            raise MalformedMessageError(f"received {received} of {total} tags")
        return bytes(tags), labels, version

    def match(self, records: Sequence[Record], *, purpose: str, case_reference: str,
              operator: str = "", mode: Mode = Mode.INTERSECTION, profile: Profile | None = None,
              list_id: str = "", progress: ProgressCallback | None = None,
              audit: AuditSink | None = None) -> MatchResult:
        """Run one private match of `records` against the partner's list.

        Without `profile`, the partner's announced profile is used if this client knows it
        (its definition hash is checked). With `audit`, the query (or its refusal) is logged
        before the result is returned.
        """
        request_id = uuid.uuid4().hex
        session_id = ""
        params: Parameters | None = None
        try:
            params = self.parameters(list_id)
            query_type = IntersectionQuery if mode is Mode.INTERSECTION else CardinalityQuery
            profile = profile or PROFILES.get(params.profile_id)
            if profile is None:
                raise ParameterMismatchError(f"the partner uses match profile '{params.profile_id}', "
                                             f"which this client does not know (known: {sorted(PROFILES)})")
            query = query_type(params, profile, records, purpose=purpose, case_reference=case_reference,
                               operator=operator, request_id=request_id)
            if query.total_elements == 0:
                result = MatchResult(mode, len(records), 0, 0)
            else:
                with ThreadPoolExecutor(max_workers=1) as pool:
                    tags_future = pool.submit(self.fetch_tags, params, mode, progress)

                    def look_up_finalized() -> None:  # while the exchange runs, rather than after it
                        if isinstance(query, IntersectionQuery) and tags_future.done() and not tags_future.exception():
                            query.look_up(tags_future.result())

                    session_id = self._evaluate(query, progress, look_up_finalized)
                    index = tags_future.result()
                result = query.result(index)
        except PsiError as exc:
            if audit:
                status = exc.status if isinstance(exc, RemoteError) else type(exc).__name__
                audit.append(events.query_failed(
                    params.node_id if params else self._target, purpose=purpose, case=case_reference,
                    operator=operator, request_id=request_id, mode=mode, status=status, message=str(exc)))
            raise
        if audit:
            audit.append(events.query_made(params.node_id, params, result, purpose=purpose, case=case_reference,
                                           operator=operator, request_id=request_id, session_id=session_id))
        return result

    def request_followup(self, hit: Hit, *, purpose: str, case_reference: str, officer: str, message: str = "",
                         list_id: str = "", audit: AuditSink | None = None) -> FollowUpStatus:
        """Ask the partner for the personal data behind one hit; an officer there decides."""
        request_id = uuid.uuid4().hex
        proof = followup.followup_proof(hit.followup_key, self._identity, hit.reference, request_id)
        request = pb.FollowUpRequest(list_id=list_id, reference=hit.reference, purpose=purpose,
                                     case_reference=case_reference, officer=officer, message=message,
                                     request_id=request_id, proof=proof)
        try:
            status = codec.followup_status_from_pb(self._stub.RequestFollowUp(request, timeout=60))
        except grpc.RpcError as exc:
            raise _remote(exc) from None
        if audit:
            audit.append(events.followup_requested(self._target, status, hit.record_id, purpose=purpose,
                                                   case=case_reference, officer=officer))
        return status

    def followup_status(self, followup_id: str, audit: AuditSink | None = None) -> FollowUpStatus:
        """The state of one of our follow-up requests; approved fields are logged as received."""
        try:
            status = codec.followup_status_from_pb(
                self._stub.GetFollowUp(pb.GetFollowUpRequest(followup_id=followup_id), timeout=60))
        except grpc.RpcError as exc:
            raise _remote(exc) from None
        if audit and status.fields:
            audit.append(events.followup_answered(self._target, status))
        return status

    def _evaluate(self, query: IntersectionQuery | CardinalityQuery,
                  progress: ProgressCallback | None, after_batch: Callable[[], None]) -> str:
        total = query.total_elements
        sent = threading.Event()

        def requests() -> Iterator[pb.EvaluateRequest]:
            steps: Iterator[ClientMessage] = itertools.chain([query.start_message()], query.batches(), [Finish()])
            for msg in steps:
                request = codec.client_message_to_pb(msg)
                self.traffic.sent += request.ByteSize()
                yield request
            sent.set()

        done = 0
        session_id = ""
        try:
            for reply in self._stub.Evaluate(requests(), timeout=self._timeout):
                msg = codec.server_message_from_pb(self._count(reply))
                if isinstance(msg, SessionAccepted):
                    if msg.key_epoch != query.params.key_epoch:
                        raise StaleStateError("the partner's key epoch changed; match again")
                    session_id = msg.session_id
                elif isinstance(msg, EvaluatedBatch):
                    query.receive(msg)
                    after_batch()
                    done += len(msg.elements) // 32
                    if progress and query.mode is Mode.INTERSECTION:
                        progress("evaluate", done, total)
                elif isinstance(msg, Progress):
                    if progress:
                        progress("evaluate", msg.received, total)
                else:
                    break
        except grpc.RpcError as exc:
            raise _remote(exc) from None
        if not session_id or not sent.is_set():
            raise MalformedMessageError("the partner ended the session early")
        return session_id
