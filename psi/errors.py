"""The one error hierarchy of the project.

    PsiError
    ├── InputError               bad caller data: a record, a file row, a request field
    │   └── RecordError          one record of an import or query file (line and field named)
    ├── ProtocolError            a peer broke the protocol
    │   ├── MalformedMessageError   wrong length, non-canonical or identity element, bad encoding
    │   │   └── ElementError         one element of a batch, by its index
    │   ├── OutOfOrderError         a step sent before its turn or twice
    │   └── ParameterMismatchError  suite, profile or mode not the one agreed
    ├── StaleStateError          the key epoch or list changed under a running exchange
    ├── LimitExceededError       a size limit of the node was exceeded
    ├── NotFoundError            an unknown list, session or file
    ├── CryptoError              a primitive refused its input (never says why to the peer)
    ├── ConfigurationError       the node's own configuration or key material is unusable
    ├── StorageError             the node's store failed (disk full, permissions); nothing changed
    ├── AuditError               an audit entry could not be written durably (fail closed)
    ├── UnauthenticatedError     the certificate names no partner of this node
    ├── PermissionDeniedError    outside the partner's agreement
    ├── BudgetExceededError      evaluation budget, rate or concurrent-session limit used up
    ├── ReplayError              a request id used before
    ├── IdleTimeoutError         a stream stalled too long
    └── RemoteError              the partner refused a call (carries the gRPC status name)
        └── Remote<Name>Error       one per mapped status, also the core class it names
                                    (e.g. RemoteStaleStateError is a StaleStateError)

The server maps these to gRPC status codes in one place (`server.status_codes`);
the client maps status codes back in one place (`client.errors`), so a caller can
catch StaleStateError or BudgetExceededError whichever side raised it.
"""

from __future__ import annotations


class PsiError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(PsiError):
    """Caller-supplied data is invalid; the message says what to fix."""


class RecordError(InputError):
    """A record is invalid; names the line (1-based) and the field."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None) -> None:
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.reason = message
        self.line = line
        self.field = field


class ProtocolError(PsiError):
    """A protocol message or step was invalid."""


class MalformedMessageError(ProtocolError):
    """A message could not be decoded or holds an invalid value."""


class ElementError(MalformedMessageError):
    """A peer's element refused: `index` in its batch, `reason` as `psi.group` words it."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"element {index}: {reason}")
        self.index = index
        self.reason = reason


class OutOfOrderError(ProtocolError):
    """A protocol step arrived out of order."""


class ParameterMismatchError(ProtocolError):
    """The two parties do not use the same suite, profile or mode."""


class StaleStateError(PsiError):
    """The key epoch or the list changed during an exchange; start again."""


class LimitExceededError(PsiError):
    """A size limit was exceeded."""


class NotFoundError(PsiError):
    """A named list, session or file does not exist."""


class CryptoError(PsiError):
    """A cryptographic operation failed (details stay local)."""


class ConfigurationError(PsiError):
    """The node's configuration or key material is unusable."""


class RemoteError(PsiError):
    """The partner node refused or failed a call; `status` is the gRPC status name."""

    def __init__(self, status: str, details: str) -> None:
        super().__init__(f"{status}: {details}")
        self.status = status
        self.details = details


class StorageError(PsiError):
    """The node's own store could not be read or written (disk full, permissions); nothing changed."""


class AuditError(PsiError):
    """An audit record could not be written durably; nothing may be disclosed."""


class UnauthenticatedError(PsiError):
    """The caller's certificate does not name a partner of this node."""


class PermissionDeniedError(PsiError):
    """The request is outside the partner's agreement (list, mode or size)."""


class BudgetExceededError(PsiError):
    """An evaluation budget, rate limit or session limit is used up; the message says when it resets."""


class ReplayError(PsiError):
    """A request id was used before."""


class IdleTimeoutError(PsiError):
    """A stream stalled longer than the node allows."""
