"""The one place where core errors become gRPC status codes.

Messages of PsiError subclasses are written for the caller and never hold
secret material; anything unexpected becomes INTERNAL with no details.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import grpc

from psi.errors import (
    ConfigurationError,
    CryptoError,
    InputError,
    LimitExceededError,
    NotFoundError,
    OutOfOrderError,
    ParameterMismatchError,
    ProtocolError,
    PsiError,
    StaleStateError,
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
)


def status_for(error: PsiError) -> grpc.StatusCode:
    for cls, code in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


@contextmanager
def grpc_errors(context: grpc.ServicerContext) -> Iterator[None]:
    """Run a handler body; end the call with the mapped status on any error."""
    try:
        yield
    except (CryptoError, ConfigurationError) as exc:
        log.error("request failed: %s", exc)  # details stay local
        _abort(context, status_for(exc), "the server could not complete the request")
    except PsiError as exc:
        _abort(context, status_for(exc), str(exc))
    except Exception:
        if context.code() is not None:  # already aborted by gRPC itself
            raise
        log.exception("unexpected error")
        _abort(context, grpc.StatusCode.INTERNAL, "internal error; the server log has details")
