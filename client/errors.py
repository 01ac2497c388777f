"""The one place where the partner's gRPC status codes become core errors (the reverse of `server.status_codes`).

Every refusal is a `RemoteError` (with the status name and the partner's details).
A mapped status raises a class that is also the matching core error, so callers can
act on a stale epoch, a used-up budget or a refusal without reading status names:

    ABORTED              RemoteStaleStateError        (StaleStateError)
    RESOURCE_EXHAUSTED   RemoteBudgetExceededError    (BudgetExceededError)
    PERMISSION_DENIED    RemotePermissionDeniedError  (PermissionDeniedError)
    UNAUTHENTICATED      RemoteUnauthenticatedError   (UnauthenticatedError)
    ALREADY_EXISTS       RemoteReplayError            (ReplayError)
    NOT_FOUND            RemoteNotFoundError          (NotFoundError)
    INVALID_ARGUMENT     RemoteProtocolError          (ProtocolError)
    FAILED_PRECONDITION  RemoteParameterMismatchError (ParameterMismatchError)
    DEADLINE_EXCEEDED    RemoteIdleTimeoutError       (IdleTimeoutError)

INVALID_ARGUMENT is a ProtocolError, not an InputError: the partner refused what
this client library built (a message, a size), which the caller cannot fix in
its records. FAILED_PRECONDITION is a ParameterMismatchError: the server sends
it for a profile, suite or mode mismatch as well as for a step out of order, and
the mismatch is the one a caller can act on (fetch the parameters, pick a profile).
Any other status (UNAVAILABLE, INTERNAL, ...) stays a plain RemoteError.
"""

from __future__ import annotations

import grpc

from psi.errors import (
    BudgetExceededError,
    IdleTimeoutError,
    NotFoundError,
    ParameterMismatchError,
    PermissionDeniedError,
    ProtocolError,
    RemoteError,
    ReplayError,
    StaleStateError,
    UnauthenticatedError,
)


class RemoteStaleStateError(RemoteError, StaleStateError):
    """The partner's key epoch or list changed: fetch its parameters and match again."""


class RemoteBudgetExceededError(RemoteError, BudgetExceededError):
    """The partner's budget, rate or session limit for this agency is used up (or a message was too large)."""


class RemotePermissionDeniedError(RemoteError, PermissionDeniedError):
    """Outside this agency's agreement with the partner."""


class RemoteUnauthenticatedError(RemoteError, UnauthenticatedError):
    """The partner does not know this agency's certificate."""


class RemoteReplayError(RemoteError, ReplayError):
    """The partner has seen this request id before."""


class RemoteNotFoundError(RemoteError, NotFoundError):
    """No such list, session or follow-up at the partner."""


class RemoteProtocolError(RemoteError, ProtocolError):
    """The partner refused a request of this client as invalid."""


class RemoteParameterMismatchError(RemoteError, ParameterMismatchError):
    """The partner's suite, profile or mode differ, or a step came out of order."""


class RemoteIdleTimeoutError(RemoteError, IdleTimeoutError):
    """The call outlived its deadline, or the partner ended a stalled stream."""


ERROR_BY_STATUS: dict[grpc.StatusCode, type[RemoteError]] = {
    grpc.StatusCode.ABORTED: RemoteStaleStateError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RemoteBudgetExceededError,
    grpc.StatusCode.PERMISSION_DENIED: RemotePermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: RemoteUnauthenticatedError,
    grpc.StatusCode.ALREADY_EXISTS: RemoteReplayError,
    grpc.StatusCode.NOT_FOUND: RemoteNotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: RemoteProtocolError,
    grpc.StatusCode.FAILED_PRECONDITION: RemoteParameterMismatchError,
    grpc.StatusCode.DEADLINE_EXCEEDED: RemoteIdleTimeoutError,
}


def remote_error(exc: grpc.RpcError) -> RemoteError:
    """The core error for a failed call: its status's class, or a plain RemoteError."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    return ERROR_BY_STATUS.get(code, RemoteError)(code.name, details or "no details")
