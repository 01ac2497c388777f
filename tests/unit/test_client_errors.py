"""The client's status -> error table: every refusal a RemoteError, mapped ones also their core class."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from client.errors import ERROR_BY_STATUS, remote_error
from psi.errors import (
    BudgetExceededError,
    IdleTimeoutError,
    NotFoundError,
    ParameterMismatchError,
    PermissionDeniedError,
    ProtocolError,
    PsiError,
    RemoteError,
    ReplayError,
    StaleStateError,
    UnauthenticatedError,
)


class _Failed(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A finished call with a status, as the stub raises it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> None: ...
    def trailing_metadata(self) -> None: ...
    def is_active(self) -> bool: return False
    def time_remaining(self) -> None: ...
    def cancel(self) -> bool: return False
    def add_callback(self, callback: Callable[[], None]) -> bool: return False


@pytest.mark.parametrize(("code", "core"), [
    (grpc.StatusCode.ABORTED, StaleStateError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, BudgetExceededError),
    (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
    (grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError),
    (grpc.StatusCode.ALREADY_EXISTS, ReplayError),
    (grpc.StatusCode.NOT_FOUND, NotFoundError),
    (grpc.StatusCode.INVALID_ARGUMENT, ProtocolError),
    (grpc.StatusCode.FAILED_PRECONDITION, ParameterMismatchError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, IdleTimeoutError),
])
def test_a_mapped_status_is_both_a_remote_error_and_its_core_class(code: grpc.StatusCode, core: type[PsiError]) -> None:
    error = remote_error(_Failed(code, "why"))
    assert isinstance(error, RemoteError) and isinstance(error, core)
    assert (error.status, error.details, str(error)) == (code.name, "why", f"{code.name}: why")


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c not in ERROR_BY_STATUS])
def test_any_other_status_stays_a_plain_remote_error(code: grpc.StatusCode) -> None:
    error = remote_error(_Failed(code, ""))
    assert type(error) is RemoteError and (error.status, error.details) == (code.name, "no details")


def test_an_error_without_a_status_is_unknown() -> None:
    error = remote_error(grpc.RpcError("channel closed"))
    assert type(error) is RemoteError and error.status == "UNKNOWN" and "channel closed" in error.details
