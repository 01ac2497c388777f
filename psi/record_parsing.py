"""Parse records from CSV or JSON Lines text (the caller opens the file).

CSV columns: id, name, birth_date, nationality, documents, reference, category.
`documents` holds `TYPE:NUMBER:COUNTRY` entries separated by `;`.
JSON Lines: one object per line with the same keys; `documents` is a list of
objects with `type`, `number`, `country`.

Countries may be ISO 3166 alpha-3 or alpha-2 codes or English names; they are
stored as alpha-3. Unless `strict`, a birth date that cannot be a date (month
13, 31 April) keeps the record without its date and adds a warning to
`issues`. With `on_error="skip"` a record that cannot be read is left out and
listed in `issues` with its line and reason; with "reject" (the default) the
first one refuses the whole file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from psi.errors import RecordError
from psi.records import IdentityDocument, PartialDate, Record, country_code

CSV_COLUMNS = ("id", "name", "given_name", "family_name", "aliases", "birth_date", "sex", "nationality",
               "place_of_birth", "documents", "reference", "category")
_REQUIRED_COLUMNS = {"id"}
T = TypeVar("T")
OnError = Literal["reject", "skip"]


@dataclass(frozen=True)
class ParseIssue:
    """A record kept without a field (`warning`) or left out (`skipped`), with its line and reason."""

    kind: Literal["warning", "skipped"]
    line: int | None
    record_id: str
    field: str | None
    reason: str
    value: str = ""  # the date that was dropped, or the skipped row as JSON (for the reject file)

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "a record"
        what = f" field '{self.field}'" if self.field else ""
        return f"{where}{what} ({self.record_id or 'no id'}): {self.reason}"


def _at(line: int, field_name: str | None, make: Callable[[], T]) -> T:
    """Run `make`, naming the line and field in any RecordError it raises."""
    try:
        return make()
    except RecordError as exc:
        raise RecordError(exc.reason, line=line, field=exc.field or field_name) from None


def _record(fields: dict[str, Any], line: int, require_reference: bool, strict: bool = True,
            issues: list[ParseIssue] | None = None) -> Record:
    def text(key: str) -> str:
        value = fields.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise RecordError("must be a string", line=line, field=key)
        return value.strip()

    birth = text("birth_date")
    nationality = text("nationality")
    birth_date = None
    if birth:
        try:
            birth_date = _at(line, "birth_date", lambda: PartialDate.parse(birth))
        except RecordError as exc:
            if strict or issues is None:
                raise
            issues.append(ParseIssue("warning", line, text("id"), "birth_date",
                                     f"{exc.reason}; the record is kept without a date of birth", birth))
    record = _at(line, None, lambda: Record(
        record_id=text("id"),
        name=text("name"),
        birth_date=birth_date,
        nationality=_at(line, "nationality", lambda: country_code(nationality)) if nationality else None,
        documents=_at(line, "documents", lambda: _documents(fields.get("documents"))),
        reference=text("reference"),
        category=text("category"),
        aliases=_at(line, "aliases", lambda: _aliases(fields.get("aliases"))),
        given_name=text("given_name"),
        family_name=text("family_name"),
        sex=text("sex").upper(),
        place_of_birth=text("place_of_birth"),
    ))
    if require_reference and not record.reference:
        raise RecordError("is required for a watchlist record", line=line, field="reference")
    return record


def _aliases(value: Any) -> tuple[str, ...]:
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        return tuple(a.strip() for a in value.split(";") if a.strip())
    if isinstance(value, list) and all(isinstance(a, str) for a in value):
        return tuple(a.strip() for a in value if a.strip())
    raise RecordError("must be a list of names or names separated by ';'", field="aliases")


def _documents(value: Any) -> tuple[IdentityDocument, ...]:
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        docs = []
        for entry in value.split(";"):
            parts = [p.strip() for p in entry.split(":")]
            if len(parts) != 3:
                raise RecordError(f"'{entry}' must be TYPE:NUMBER:COUNTRY", field="documents")
            docs.append(IdentityDocument(parts[0], parts[1], country_code(parts[2], "documents")))
        return tuple(docs)
    if isinstance(value, list):
        docs = []
        for entry in value:
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k), str) for k in ("type", "number", "country")
            ):
                raise RecordError(
                    "each document needs string fields type, number and country", field="documents"
                )
            docs.append(IdentityDocument(entry["type"], entry["number"], country_code(entry["country"], "documents")))
        return tuple(docs)
    raise RecordError("must be a list or TYPE:NUMBER:COUNTRY text", field="documents")


def _csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    reader = csv.DictReader(lines, strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise RecordError(f"unreadable CSV header: {exc}", line=1) from None
    if header is None:
        raise RecordError("the file is empty; expected a header row", line=1)
    missing = _REQUIRED_COLUMNS - set(header)
    unknown = set(header) - set(CSV_COLUMNS)
    if missing or unknown:
        raise RecordError(
            f"header must name columns from {', '.join(CSV_COLUMNS)} "
            f"(missing: {sorted(missing) or 'none'}, unknown: {sorted(unknown) or 'none'})",
            line=1,
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RecordError(f"malformed CSV: {exc}", line=reader.line_num) from None
        if None in row:
            yield reader.line_num, RecordError("has more values than the header has columns", line=reader.line_num)
        else:
            yield reader.line_num, row


def _jsonl_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | RecordError]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RecordError(f"invalid JSON: {exc.msg}", line=number)
            continue
        if not isinstance(obj, dict):
            yield number, RecordError("must be a JSON object", line=number)
            continue
        unknown = set(obj) - set(CSV_COLUMNS)
        if unknown:
            yield number, RecordError(f"unknown keys {sorted(unknown)}", line=number)
            continue
        yield number, obj


def _parse(rows: Iterator[tuple[int, dict[str, Any] | RecordError]], require_reference: bool, strict: bool,
           on_error: OnError, issues: list[ParseIssue] | None) -> Iterator[Record]:
    if on_error not in ("reject", "skip"):
        raise RecordError(f"unknown on_error '{on_error}'; use reject or skip")
    for line, fields in rows:
        try:
            if isinstance(fields, RecordError):
                raise fields
            yield _record(fields, line, require_reference, strict, issues)
        except RecordError as exc:
            if on_error == "reject" or issues is None:
                raise
            record_id = fields.get("id") if isinstance(fields, dict) else None
            issues.append(ParseIssue("skipped", line, record_id if isinstance(record_id, str) else "",
                                     exc.field, exc.reason,
                                     json.dumps(fields, ensure_ascii=False) if isinstance(fields, dict) else ""))


def parse_csv(lines: Iterable[str], *, require_reference: bool = False, strict: bool = True,
              on_error: OnError = "reject", issues: list[ParseIssue] | None = None) -> Iterator[Record]:
    """Records from CSV text with a header row. Raises RecordError naming the line (see the module doc)."""
    return _parse(_csv_rows(lines), require_reference, strict, on_error, issues)


def parse_jsonl(lines: Iterable[str], *, require_reference: bool = False, strict: bool = True,
                on_error: OnError = "reject", issues: list[ParseIssue] | None = None) -> Iterator[Record]:
    """Records from JSON Lines; blank lines are skipped. Raises RecordError naming the line."""
    return _parse(_jsonl_rows(lines), require_reference, strict, on_error, issues)


def parse_records(lines: Iterable[str], fmt: str, *, require_reference: bool = False, strict: bool = False,
                  on_error: OnError = "reject", issues: list[ParseIssue] | None = None) -> list[Record]:
    """Parse a whole file's lines as `csv` or `jsonl`; duplicate ids are refused (or skipped)."""
    issues = [] if issues is None else issues
    if fmt == "csv":
        records = list(parse_csv(lines, require_reference=require_reference, strict=strict, on_error=on_error,
                                 issues=issues))
    elif fmt == "jsonl":
        records = list(parse_jsonl(lines, require_reference=require_reference, strict=strict, on_error=on_error,
                                   issues=issues))
    else:
        raise RecordError(f"unknown format '{fmt}'; use csv or jsonl")
    seen: set[str] = set()
    kept: list[Record] = []
    for index, record in enumerate(records):
        if record.record_id in seen:
            reason = f"duplicate id '{record.record_id}' (record {index + 1})"
            if on_error == "reject":
                raise RecordError(reason, field="id")
            issues.append(ParseIssue("skipped", None, record.record_id, "id", reason))
            continue
        seen.add(record.record_id)
        kept.append(record)
    return kept


def _documents_text(record: Record) -> str:
    return ";".join(f"{d.doc_type}:{d.number}:{d.country}" for d in record.documents)


def format_csv(records: Iterable[Record]) -> str:
    """CSV text that `parse_csv` reads back to the same records."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow((r.record_id, r.name, r.given_name, r.family_name, ";".join(r.aliases),
                         r.birth_date.isoformat() if r.birth_date else "", r.sex, r.nationality or "",
                         r.place_of_birth, _documents_text(r), r.reference, r.category))
    return out.getvalue()


def format_jsonl(records: Iterable[Record]) -> str:
    """JSON Lines text that `parse_jsonl` reads back to the same records."""
    lines = []
    for r in records:
        doc: dict[str, Any] = {"id": r.record_id}
        for key, value in (("name", r.name), ("given_name", r.given_name), ("family_name", r.family_name),
                           ("sex", r.sex), ("place_of_birth", r.place_of_birth)):
            if value:
                doc[key] = value
        if r.birth_date:
            doc["birth_date"] = r.birth_date.isoformat()
        if r.nationality:
            doc["nationality"] = r.nationality
        if r.documents:
            doc["documents"] = [{"type": d.doc_type, "number": d.number, "country": d.country}
                                for d in r.documents]
        if r.reference:
            doc["reference"] = r.reference
        if r.category:
            doc["category"] = r.category
        if r.aliases:
            doc["aliases"] = list(r.aliases)
        lines.append(json.dumps(doc, ensure_ascii=False) + "\n")
    return "".join(lines)
