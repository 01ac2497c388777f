"""Read a CSV or JSON Lines record file for import or matching."""

from __future__ import annotations

from pathlib import Path

from psi.errors import InputError, RecordError
from psi.record_parsing import OnError, ParseIssue, parse_records
from psi.records import Record

_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def read_records(path: Path, fmt: str | None = None, *, require_reference: bool = False, strict: bool = False,
                 on_error: OnError = "reject", issues: list[ParseIssue] | None = None) -> list[Record]:
    """All records of the file, or RecordError naming the line and field of the first bad one.

    Impossible dates and skipped records are listed in `issues` (see psi.record_parsing).
    """
    fmt = fmt or _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot tell the format of {path}; name it .csv or .jsonl, or pass --format")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:  # a byte-order mark is no field name
            return parse_records(handle, fmt, require_reference=require_reference, strict=strict,
                                 on_error=on_error, issues=issues)
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
