"""Parse records from CSV or JSON Lines text (the caller opens the file).

CSV columns: id, name, birth_date, nationality, documents, reference, category.
`documents` holds `TYPE:NUMBER:COUNTRY` entries separated by `;`.
JSON Lines: one object per line with the same keys; `documents` is a list of
objects with `type`, `number`, `country`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from psi.errors import RecordError
from psi.records import IdentityDocument, PartialDate, Record

CSV_COLUMNS = ("id", "name", "given_name", "family_name", "aliases", "birth_date", "sex", "nationality",
               "place_of_birth", "documents", "reference", "category")
_REQUIRED_COLUMNS = {"id"}
T = TypeVar("T")


def _at(line: int, field_name: str | None, make: Callable[[], T]) -> T:
    """Run `make`, naming the line and field in any RecordError it raises."""
    try:
        return make()
    except RecordError as exc:
        raise RecordError(exc.reason, line=line, field=exc.field or field_name) from None


def _record(fields: dict[str, Any], line: int, require_reference: bool) -> Record:
    def text(key: str) -> str:
        value = fields.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise RecordError("must be a string", line=line, field=key)
        return value.strip()

    birth = text("birth_date")
    nationality = text("nationality").upper()
    record = _at(line, None, lambda: Record(
        record_id=text("id"),
        name=text("name"),
        birth_date=_at(line, "birth_date", lambda: PartialDate.parse(birth)) if birth else None,
        nationality=nationality or None,
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
            docs.append(IdentityDocument(parts[0], parts[1], parts[2].upper()))
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
            docs.append(IdentityDocument(entry["type"], entry["number"], entry["country"].upper()))
        return tuple(docs)
    raise RecordError("must be a list or TYPE:NUMBER:COUNTRY text", field="documents")


def parse_csv(lines: Iterable[str], *, require_reference: bool = False) -> Iterator[Record]:
    """Records from CSV text with a header row. Raises RecordError naming the line."""
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
            raise RecordError("has more values than the header has columns", line=reader.line_num)
        yield _record(row, reader.line_num, require_reference)


def parse_jsonl(lines: Iterable[str], *, require_reference: bool = False) -> Iterator[Record]:
    """Records from JSON Lines. Blank lines are skipped. Raises RecordError naming the line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(f"invalid JSON: {exc.msg}", line=number) from None
        if not isinstance(obj, dict):
            raise RecordError("must be a JSON object", line=number)
        unknown = set(obj) - set(CSV_COLUMNS)
        if unknown:
            raise RecordError(f"unknown keys {sorted(unknown)}", line=number)
        yield _record(obj, number, require_reference)


def parse_records(lines: Iterable[str], fmt: str, *, require_reference: bool = False) -> list[Record]:
    """Parse a whole file's lines as `csv` or `jsonl`; duplicate ids are refused."""
    if fmt == "csv":
        records = list(parse_csv(lines, require_reference=require_reference))
    elif fmt == "jsonl":
        records = list(parse_jsonl(lines, require_reference=require_reference))
    else:
        raise RecordError(f"unknown format '{fmt}'; use csv or jsonl")
    seen: set[str] = set()
    for index, record in enumerate(records):
        if record.record_id in seen:
            raise RecordError(f"duplicate id '{record.record_id}' (record {index + 1})", field="id")
        seen.add(record.record_id)
    return records


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
