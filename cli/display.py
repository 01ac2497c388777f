"""Text from partners and logs shown to a person: data, never markup, control codes or formulas.

Anything a partner sent (a purpose, a case reference, a follow-up message, a
reference) may reach an officer's terminal, a rich table or a spreadsheet.
`plain` makes it inert for a terminal and for rich; `csv_cell` for a
spreadsheet (OWASP's CSV-injection rule: a cell that starts like a formula is
prefixed with a quote).
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.markup import escape

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNWRAPPED = 100_000  # columns: wide enough that no line of ours wraps


def plain(text: str) -> str:
    """`text` with control characters (escape sequences among them) removed and rich markup escaped."""
    return escape(_CONTROLS.sub("", text))


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text, never evaluates."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def make_console(stderr: bool = False) -> Console:
    """A rich console; when its output is not a terminal (logs, CI, a pipe), nothing is wrapped,
    so a table row stays one line and a message stays one line."""
    out = Console(stderr=stderr)
    return out if out.is_terminal else Console(stderr=stderr, soft_wrap=True, width=_UNWRAPPED)
