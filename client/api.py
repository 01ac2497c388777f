"""The Python API agency systems use to match against a partner node.

    with MatchClient("partner.example:50051", ClientTls(ca, cert, key)) as client:
        result = client.match(records, purpose="...", case_reference="...")

Raises PsiError subclasses only. A refused call is a RemoteError (with the
gRPC status name and the partner's details) that is also the core error its
status stands for (`client.errors`): catch StaleStateError to match again after
a key rotation or list change, BudgetExceededError for a used-up budget or rate,
PermissionDeniedError for a request outside the agreement. ParameterMismatchError
also comes from this side when the partner's suite or profile differ.

The client checks who answers: the partner's certificate must carry exactly one common name,
equal to `partner` when the caller names the partner it means to reach, and equal to the node
id in the partner's parameters. Audit entries and the tag cache are keyed by that verified name.

Group operations run on an `Executor`: by default this process's `worker_pool()`,
whose workers start on the first query large enough to need them (or `start()`).
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from client import audit_events as events
from client.audit_events import AuditSink
from client.bulk import Aborted, BulkExchange, BulkQuery, choose_mode, gc_paused
from client.errors import remote_error
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
    UnauthenticatedError,
)
from psi.executor import Executor
from psi.messages import (
    ClientMessage,
    Done,
    EvaluatedBatch,
    Finish,
    FollowUpStatus,
    Mode,
    Parameters,
    Progress,
    ServerMessage,
    SessionAccepted,
)
from psi.profiles import PROFILES, Profile
from psi.records import Record
from psi.tag_sync import TagRequest, TagSync
from psi.tagset import TagIndex
from psi.workers import WorkerPool
from psiwire import codec
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from psiwire.identity import PeerCertificate, identity_from_der, identity_from_pem

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total)
M = TypeVar("M", bound=Message)
_RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_IN_FLIGHT = 8  # Evaluate messages sent ahead of their replies: keeps the partner busy, bounds the blinds held
_workers_lock = threading.Lock()
_workers: WorkerPool | None = None


def worker_pool() -> WorkerPool:
    """This process's worker pool for the queries' group operations, made on first use (workers start later)."""
    global _workers  # noqa: PLW0603  (one pool per client process)
    with _workers_lock:
        if _workers is None:
            _workers = WorkerPool()
        return _workers


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
        """This agency's name as partners see it: the one common name of its certificate."""
        try:
            return identity_from_pem(self.cert.read_bytes()).name
        except OSError as exc:
            raise InputError(f"cannot read the certificate {self.cert}: {exc.strerror}") from None
        except UnauthenticatedError as exc:
            raise InputError(f"the certificate {self.cert}: {exc}") from None

    def server_certificate(self, target: str, server_name: str | None = None,
                           timeout: float = 30.0) -> PeerCertificate:
        """The certificate the node at `target` (HOST:PORT) presents, verified against our CA.

        gRPC's Python client does not expose the peer certificate, so this is one TLS handshake of
        its own with the same CA and client certificate; the gRPC channel verifies the same
        certificate chain for its host name.
        """
        host, _, port = target.rpartition(":")
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        context.check_hostname = False  # the name that counts is the CN, checked by the caller
        context.load_cert_chain(self.cert, self.key)
        context.set_alpn_protocols(["h2"])
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw, \
                    context.wrap_socket(raw, server_hostname=server_name or host.strip("[]")) as tls:
                der = tls.getpeercert(binary_form=True)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise RemoteError("UNAVAILABLE", f"cannot verify the node at {target}: {exc}") from None
        if der is None:
            raise UnauthenticatedError(f"the node at {target} presented no certificate")
        return identity_from_der(der)


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
    """One mutual-TLS channel to one partner node; queries run their group operations on `executor`."""

    def __init__(self, target: str, tls: ClientTls, *, server_name: str | None = None, partner: str | None = None,
                 timeout: float = 3600.0, cache_dir: Path | None = None, executor: Executor | None = None) -> None:
        options: list[tuple[str, int | str]] = [("grpc.max_receive_message_length", 64 << 20)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self._channel = grpc.secure_channel(target, tls.credentials(), options=options)
        self._stub = pb_grpc.MatchingStub(self._channel)
        self._timeout = timeout
        self._target = target
        self._tls = tls
        self._server_name = server_name
        self._expected = partner  # the partner the caller means to reach; its certificate must name it
        self._partner: str | None = None  # verified, on first use
        self._identity = tls.identity()
        self._cache = TagCache(cache_dir) if cache_dir else None
        self._executor = executor if executor is not None else worker_pool()
        self._indexes: dict[tuple[str, str, Mode], tuple[CachedTags, TagIndex]] = {}  # warm, in this process
        self._saving = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tag-cache")  # a thread once used
        self._saved: Future[None] | None = None  # the cache file last handed to `_saving`
        self.traffic = Traffic()

    def __enter__(self) -> MatchClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel, once the tag cache file being written is written (its error, if any, is raised)."""
        self._channel.close()
        self._saving.shutdown(wait=True)
        self._wait_saved()

    def _wait_saved(self) -> None:
        saved, self._saved = self._saved, None
        if saved is not None:
            saved.result()

    def _count(self, message: M) -> M:
        self.traffic.received += message.ByteSize()
        return message

    @property
    def partner(self) -> str:
        """Who answers: the verified name of the partner's certificate (UnauthenticatedError if not the one meant)."""
        if self._partner is None:
            name = self._tls.server_certificate(self._target, self._server_name).name
            if self._expected is not None and name != self._expected:
                raise UnauthenticatedError(f"the node at {self._target} presents a certificate for '{name}', "
                                           f"not for '{self._expected}'")
            self._partner = name
        return self._partner

    def parameters(self, list_id: str = "") -> Parameters:
        partner = self.partner
        try:
            reply = self._stub.GetParameters(pb.GetParametersRequest(list_id=list_id), timeout=60)
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        params = codec.parameters_from_pb(reply)
        if params.node_id != partner:
            raise UnauthenticatedError(f"the node '{partner}' claims to be node '{params.node_id}'")
        return params

    def fetch_tags(self, params: Parameters, mode: Mode,
                   progress: ProgressCallback | None = None) -> TagIndex:
        """The partner's tag set for this epoch.

        With a cache, an unchanged set costs no transfer and a changed one only its changes;
        `TagSync` decides what to ask for and what a broken stream means.
        """
        slot = (self.partner, params.list_id, mode)
        warm = self._indexes.get(slot)
        cached = warm[0] if warm else (self._cache.load(*slot) if self._cache else None)
        if cached and cached.list_version == params.list_version and \
                len(cached.tags) != params.tag_count * cached.tag_length:
            cached = None  # not the set the partner announces: fetch it again
        sync = TagSync(params, mode, cached)
        if warm and sync.done:
            return warm[1]  # this process already holds exactly this set
        while (request := sync.next_request()) is not None:
            self._stream_tags(params.list_id, request, sync, progress)
        tags, labels, version = sync.result()
        fresh = CachedTags(self.partner, params.list_id, mode, params.key_epoch, version, params.tag_length,
                           tags, labels)
        if self._cache and fresh != cached:
            self._wait_saved()
            self._saved = self._saving.submit(self._cache.save, fresh)  # written while the query goes on
        index = TagIndex(tags, params.tag_length, labels if mode is Mode.INTERSECTION else ())
        self._indexes[slot] = (fresh, index)
        return index

    def _stream_tags(self, list_id: str, request: TagRequest, sync: TagSync,
                     progress: ProgressCallback | None) -> None:
        """One StreamTags call into `sync`, which resumes, falls back or raises when it breaks."""
        message = codec.tag_request_to_pb(request, list_id)
        self.traffic.sent += message.ByteSize()
        call = self._stub.StreamTags(message, timeout=self._timeout)
        try:
            for chunk in call:
                sync.receive(codec.tag_chunk_from_pb(self._count(chunk)))
                if progress:
                    progress("tags", *sync.progress)
            sync.stream_ended()
        except grpc.RpcError as exc:
            sync.failed(remote_error(exc), resumable=exc.code() in _RESUMABLE)
        except PsiError as exc:  # a chunk failed a check: stop this stream
            call.cancel()
            sync.failed(exc, resumable=False)
        if progress and sync.done:
            progress("tags", *sync.progress)

    def match(self, records: Sequence[Record], *, purpose: str, case_reference: str,
              operator: str = "", mode: Mode = Mode.INTERSECTION, profile: Profile | None = None,
              list_id: str = "", progress: ProgressCallback | None = None,
              audit: AuditSink | None = None) -> MatchResult:
        """Run one private match of `records` against the partner's list.

        Without `profile`, the partner's announced profile is used if this client knows it
        (its definition hash is checked). With `audit`, the query (or its refusal) is logged
        before the result is returned.
        """
        if mode is Mode.BULK:
            return self.bulk_match(records, purpose=purpose, case_reference=case_reference, operator=operator,
                                   profile=profile, list_id=list_id, progress=progress, audit=audit)
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
                               operator=operator, request_id=request_id, executor=self._executor)
            if query.total_elements == 0:
                result = MatchResult(mode, len(records), 0, 0)
            else:
                with ThreadPoolExecutor(max_workers=1) as pool:  # the tags arrive while the exchange runs
                    tags = pool.submit(self.fetch_tags, params, mode, progress)
                    session_id = self._evaluate(query, tags, progress)
                    index = tags.result()
                result = query.result(index)
        except PsiError as exc:
            if audit:
                status = exc.status if isinstance(exc, RemoteError) else type(exc).__name__
                audit.append(events.query_failed(
                    self._partner or self._target, purpose=purpose, case=case_reference,
                    operator=operator, request_id=request_id, mode=mode, status=status, message=str(exc)))
            raise
        if audit:
            audit.append(events.query_made(self.partner, params, result, purpose=purpose, case=case_reference,
                                           operator=operator, request_id=request_id, session_id=session_id))
        return result

    def bulk_match(self, records: Sequence[Record], *, purpose: str, case_reference: str, operator: str = "",
                   profile: Profile | None = None, list_id: str = "", progress: ProgressCallback | None = None,
                   audit: AuditSink | None = None, abort: Callable[[], bool] = lambda: False) -> MatchResult:
        """`match` in bulk mode (`client.bulk`): the same hits, for two large lists, in one BulkMatch call.

        `abort` is asked before each message sent: True ends the session early (audited as aborted on both
        sides, as Ctrl-C does). A broken session discloses nothing and costs no budget: match again.
        """
        request_id = uuid.uuid4().hex
        query: BulkQuery | None = None
        exchange: BulkExchange | None = None
        try:
            params = self.parameters(list_id)
            profile = profile or PROFILES.get(params.profile_id)
            if profile is None:
                raise ParameterMismatchError(f"the partner uses match profile '{params.profile_id}', "
                                             f"which this client does not know (known: {sorted(PROFILES)})")
            with gc_paused():
                query = BulkQuery(params, profile, records, purpose=purpose, case_reference=case_reference,
                                  operator=operator, request_id=request_id)
                if query.items == 0:
                    result = MatchResult(Mode.BULK, len(records), 0, 0)
                else:
                    exchange = BulkExchange(self._stub, self._timeout, self.traffic, query, progress, abort)
                    exchange.run()
                    result = query.result()
        except (PsiError, Aborted, KeyboardInterrupt) as exc:
            if audit:
                accepted = exchange is not None and exchange.accepted
                aborted = isinstance(exc, Aborted | KeyboardInterrupt)
                status = exc.status if isinstance(exc, RemoteError) else type(exc).__name__
                audit.append(events.bulk_failed(
                    self._partner or self._target, purpose=purpose, case=case_reference, operator=operator,
                    request_id=request_id, status=status, message=str(exc) or type(exc).__name__,
                    end_state="aborted" if aborted else "broken" if accepted else "refused",
                    session_id=exchange.session_id if exchange else "", client_records=len(records),
                    client_elements=query.items if query else 0,
                    correction_bytes=query.correction_bytes if query else 0,
                    result_bytes=query.result_bytes if query else 0))
            raise
        if audit:
            audit.append(events.bulk_made(self.partner, params, result, purpose=purpose, case=case_reference,
                                          operator=operator, request_id=request_id,
                                          session_id=exchange.session_id if exchange else "",
                                          correction_bytes=query.correction_bytes, result_bytes=query.result_bytes))
        return result

    def warm_tags(self, params: Parameters, mode: Mode = Mode.INTERSECTION) -> bool:
        """Whether this client holds the partner's tags of `params`' key epoch (in this process or its cache)."""
        slot = (self.partner, params.list_id, mode)
        warm = self._indexes.get(slot)
        cached = warm[0] if warm else (self._cache.load(*slot) if self._cache else None)
        return cached is not None and cached.key_epoch == params.key_epoch

    def choose_mode(self, records: Sequence[Record], list_id: str = "") -> tuple[Mode, str]:
        """The mode `psi match --mode auto` takes for these records (`client.bulk.choose_mode`), and why."""
        params = self.parameters(list_id)
        return choose_mode(len(records), params, self.warm_tags(params))

    def request_followup(self, hit: Hit, *, purpose: str, case_reference: str, officer: str, message: str = "",
                         list_id: str = "", audit: AuditSink | None = None) -> FollowUpStatus:
        """Ask the partner for the personal data behind one hit; an officer there decides."""
        partner = self.partner
        request_id = uuid.uuid4().hex
        proof = followup.followup_proof(hit.followup_key, self._identity, hit.reference, request_id)
        request = pb.FollowUpRequest(list_id=list_id, reference=hit.reference, purpose=purpose,
                                     case_reference=case_reference, officer=officer, message=message,
                                     request_id=request_id, proof=proof)
        try:
            status = codec.followup_status_from_pb(self._stub.RequestFollowUp(request, timeout=60))
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        if audit:
            audit.append(events.followup_requested(partner, status, hit.record_id, purpose=purpose,
                                                   case=case_reference, officer=officer))
        return status

    def followup_status(self, followup_id: str, audit: AuditSink | None = None) -> FollowUpStatus:
        """The state of one of our follow-up requests; approved fields are logged as received."""
        partner = self.partner
        try:
            status = codec.followup_status_from_pb(
                self._stub.GetFollowUp(pb.GetFollowUpRequest(followup_id=followup_id), timeout=60))
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        if audit and status.fields:
            audit.append(events.followup_answered(partner, status))
        return status

    def _evaluate(self, query: IntersectionQuery | CardinalityQuery, tags: Future[TagIndex],
                  progress: ProgressCallback | None) -> str:
        return _Exchange(self._stub, self._timeout, self.traffic, query, tags, progress).run()


class _Exchange:
    """One Evaluate call, driven from the one thread that calls the query.

    gRPC's sending thread only reads a queue of requests. The partner answers the start and
    each batch with one message, so batches go at most _IN_FLIGHT ahead of the replies, and
    finalized batches are looked up as soon as `tags` is done, while the exchange runs.
    """

    def __init__(self, stub: pb_grpc.MatchingStub, timeout: float, traffic: Traffic,
                 query: IntersectionQuery | CardinalityQuery, tags: Future[TagIndex],
                 progress: ProgressCallback | None) -> None:
        self._query = query
        self._tags = tags
        self._progress = progress
        self._traffic = traffic
        self._evaluated = 0
        self.session_id = ""
        self._outbox: queue.SimpleQueue[pb.EvaluateRequest | None] = queue.SimpleQueue()
        self._call = stub.Evaluate(self._requests(), timeout=timeout)

    def _requests(self) -> Iterator[pb.EvaluateRequest]:
        while (request := self._outbox.get()) is not None:
            yield request

    def _send(self, msg: ClientMessage) -> None:
        request = codec.client_message_to_pb(msg)
        self._traffic.sent += request.ByteSize()
        self._outbox.put(request)

    def run(self) -> str:
        """The session id, once the partner is done."""
        try:
            self._send(self._query.start_message())
            owed = 1  # replies: one to the start, one to each batch
            for batch in self._query.batches():
                self._send(batch)
                owed += 1
                while owed > _IN_FLIGHT:
                    self._take()
                    owed -= 1
            self._send(Finish())
            self._outbox.put(None)
            while not isinstance(self._take(), Done):
                pass
        except grpc.RpcError as exc:
            raise remote_error(exc) from None
        finally:
            self._outbox.put(None)  # ends the request stream if an error left it open
            self._call.cancel()  # nothing once the call has completed
        if not self.session_id:
            raise MalformedMessageError("the partner never accepted the session")
        return self.session_id

    def _take(self) -> ServerMessage:
        """The next reply, handed to the query."""
        reply = next(self._call, None)
        if reply is None:
            raise MalformedMessageError("the partner ended the session early")
        self._traffic.received += reply.ByteSize()
        msg = codec.server_message_from_pb(reply)
        query, progress = self._query, self._progress
        if isinstance(msg, SessionAccepted):
            if msg.key_epoch != query.params.key_epoch:
                raise StaleStateError("the partner's key epoch changed; match again")
            self.session_id = msg.session_id
        elif isinstance(msg, EvaluatedBatch):
            query.receive(msg)
            if isinstance(query, IntersectionQuery) and self._tags.done() and not self._tags.exception():
                query.look_up(self._tags.result())
            self._evaluated += len(msg.elements) // 32
            if progress and query.mode is Mode.INTERSECTION:
                progress("evaluate", self._evaluated, query.total_elements)
        elif isinstance(msg, Progress) and progress:
            progress("evaluate", msg.received, query.total_elements)
        return msg
