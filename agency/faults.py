"""Named crash points for the fault-injection tests: the process dies there as if SIGKILLed.

A writer calls `crash_point("import.after_commit")` at each step that the
store and the audit log must survive. Nothing happens unless the environment
variable PSI_CRASH_AT names that point (set only by tests/integration/test_crash_consistency.py);
then the process kills itself with SIGKILL, so no `finally`, atexit or flush runs.
"""

from __future__ import annotations

import os
import signal

_VARIABLE = "PSI_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
