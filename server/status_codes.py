"""The one place where core errors become gRPC status codes.

Messages of PsiError subclasses are written for the caller and never hold
secret material; anything unexpected becomes INTERNAL with no details.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import grpc

from psi.errors import (
    AuditError,
    BudgetExceededError,
    ConfigurationError,
    CryptoError,
    IdleTimeoutError,
    InputError,
    LimitExceededError,
    NotFoundError,
    OutOfOrderError,
    ParameterMismatchError,
    PermissionDeniedError,
    ProtocolError,
    PsiError,
    ReplayError,
    StaleStateError,
    StorageError,
    UnauthenticatedError,
)

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides.
STATUS_BY_ERROR: tuple[tuple[type[PsiError], grpc.StatusCode], ...] = (
    (OutOfOrderError, grpc.StatusCode.FAILED_PRECONDITION),
    (ParameterMismatchError, grpc.StatusCode.FAILED_PRECONDITION),
    (ProtocolError, grpc.StatusCode.INVALID_ARGUMENT),
    (InputError, grpc.StatusCode.INVALID_ARGUMENT),
    (LimitExceededError, grpc.StatusCode.INVALID_ARGUMENT),
    (StaleStateError, grpc.StatusCode.ABORTED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (CryptoError, grpc.StatusCode.INTERNAL),
    (ConfigurationError, grpc.StatusCode.UNAVAILABLE),
    (AuditError, grpc.StatusCode.UNAVAILABLE),
    (StorageError, grpc.StatusCode.UNAVAILABLE),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (BudgetExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ReplayError, grpc.StatusCode.ALREADY_EXISTS),
    (IdleTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)


def status_for(error: PsiError) -> grpc.StatusCode:
    for cls, code in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


Refusal = Callable[[grpc.StatusCode, str], None]


def _public(exc: PsiError) -> str:
    if isinstance(exc, CryptoError | ConfigurationError | AuditError | StorageError):
        log.error("request failed: %s", exc)  # details stay local
        return "the server could not complete the request"
    return str(exc)


@contextmanager
def grpc_errors(context: grpc.ServicerContext, on_refused: Refusal | None = None) -> Iterator[None]:
    """Run a handler body; end the call with the mapped status on any error.

    `on_refused` records the refusal (the audit log) before the caller hears of it;
    if that fails, the call ends UNAVAILABLE instead.
    """
    try:
        yield
    except PsiError as exc:
        code, message = status_for(exc), _public(exc)
        if on_refused:
            try:
                on_refused(code, message)
            except AuditError as audit_exc:
                code, message = status_for(audit_exc), _public(audit_exc)
        _abort(context, code, message)
    except Exception:
        if context.code() is not None:  # already aborted by gRPC itself
            raise
        log.exception("unexpected error")
        _abort(context, grpc.StatusCode.INTERNAL, "internal error; the server log has details")
