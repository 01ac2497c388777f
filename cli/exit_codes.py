"""What `psi` exits with: one code per failure class, decided here and nowhere else.

Scripts and supervisors act on the class (re-run after a stale epoch, wait for a rotation
after a used-up budget, page someone for a configuration or storage problem) without
reading the message. docs/operations.md lists the same table for operators.
"""

from __future__ import annotations

from enum import IntEnum

from psi.errors import (
    AuditError,
    BudgetExceededError,
    ConfigurationError,
    CryptoError,
    MalformedMessageError,
    ParameterMismatchError,
    PsiError,
    RemoteError,
    StaleStateError,
    StorageError,
    UnauthenticatedError,
)


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # a check ran and found a problem: an audit log not intact, logs not reconciled
    USAGE = 2  # a bad option, input file or record, an unknown id, a step already taken (argparse exits 2 too)
    CONFIG = 3  # the node's config, TLS files or keys are unusable
    STORAGE = 4  # the node's store cannot be read or written (disk full, permissions)
    AUDIT = 5  # the audit log refused an entry; nothing was disclosed
    PARTNER = 6  # the partner refused the call or could not be reached
    STALE = 7  # the partner's key epoch or list changed during the exchange: run again
    BUDGET = 8  # an evaluation budget, rate or session limit is used up
    IDENTITY = 9  # a certificate names another agency than the one expected
    PROTOCOL = 10  # the partner's messages or parameters do not fit: malformed, another profile or suite
    FILE = 11  # a file could not be read or written (the message names it)
    INTERNAL = 70  # a bug: run again with --debug and report the traceback (sysexits' EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C


# Most specific first: a remote refusal that is also a stale epoch or a used-up budget says so.
EXIT_BY_ERROR: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (StaleStateError, ExitCode.STALE),
    (BudgetExceededError, ExitCode.BUDGET),
    (UnauthenticatedError, ExitCode.IDENTITY),
    (RemoteError, ExitCode.PARTNER),
    (MalformedMessageError, ExitCode.PROTOCOL),
    (ParameterMismatchError, ExitCode.PROTOCOL),
    (CryptoError, ExitCode.PROTOCOL),
    (ConfigurationError, ExitCode.CONFIG),
    (StorageError, ExitCode.STORAGE),
    (AuditError, ExitCode.AUDIT),
    (PsiError, ExitCode.USAGE),
    (OSError, ExitCode.FILE),
    (KeyboardInterrupt, ExitCode.INTERRUPTED),
)


def exit_code(error: BaseException) -> ExitCode:
    return next((code for cls, code in EXIT_BY_ERROR if isinstance(error, cls)), ExitCode.INTERNAL)
