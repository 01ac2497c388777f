from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.synthetic import make_lists
from psi.errors import RecordError
from psi.record_parsing import CSV_COLUMNS, format_csv, format_jsonl, parse_records
from psi.records import IdentityDocument, PartialDate, Record


@pytest.mark.parametrize(("text", "date"), [
    ("1980", PartialDate(1980)),
    ("1980-02", PartialDate(1980, 2)),
    ("2000-02-29", PartialDate(2000, 2, 29)),
])
def test_partial_dates_parse(text: str, date: PartialDate) -> None:
    assert PartialDate.parse(text) == date
    assert date.isoformat() == text


@pytest.mark.parametrize("text", ["1900-02-29", "1980-13", "80", "1980/13/02", "31.04.1980", "1980-04-31", "2.3", ""])
def test_invalid_dates_are_refused(text: str) -> None:
    with pytest.raises(RecordError):
        PartialDate.parse(text)


def test_round_trip_csv_and_jsonl() -> None:
    records = make_lists(40, 30, 10).a
    assert parse_records(format_csv(records).splitlines(keepends=True), "csv") == records
    assert parse_records(format_jsonl(records).splitlines(keepends=True), "jsonl") == records


def test_unicode_names_survive_both_formats() -> None:
    record = Record("x1", "Ельцин Борис", PartialDate(1931, 2, 1), "RUS",
                    (IdentityDocument("PASSPORT", "12 34-56", "RUS"),), "R-1", "arrest")
    assert parse_records(format_csv([record]).splitlines(keepends=True), "csv") == [record]
    assert parse_records(format_jsonl([record]).splitlines(keepends=True), "jsonl") == [record]


@pytest.mark.parametrize(("lines", "fmt", "message"), [
    (["id,name,birth_date,reference\n", "1,Ann,1980-01-01,R\n", "2,Bob,1980-13-01,R\n"], "csv",
     "line 3, field 'birth_date'"),
    (["id,name,reference\n", "1,Ann,R\n", "1,Bob,R\n"], "csv", "duplicate id '1'"),
    (["id,name,colour\n"], "csv", "unknown: ['colour']"),
    (["id,name,reference\n", "1,Ann,R,extra\n"], "csv", "line 2"),
    (["id,name,reference\n", "1,,R\n"], "csv", "line 2, field 'name'"),
    (['{"id": "1", "name": "Ann", "reference": "R"}\n', "{not json\n"], "jsonl", "line 2: invalid JSON"),
    (['{"id": "1", "name": "Ann", "nationality": "Narnia", "reference": "R"}\n'], "jsonl",
     "line 1, field 'nationality'"),
    (['{"id": "1", "name": "Ann", "documents": [{"type": "P"}], "reference": "R"}\n'], "jsonl",
     "line 1, field 'documents'"),
    (['{"id": 7, "name": "Ann", "reference": "R"}\n'], "jsonl", "line 1, field 'id'"),
    (["id,name,documents,reference\n", "1,Ann,PASSPORT-123,R\n"], "csv", "line 2, field 'documents'"),
    (["id,name\n", "1,Ann\n"], "csv", "line 2, field 'reference'"),
])
def test_bad_rows_name_line_and_field(lines: list[str], fmt: str, message: str) -> None:
    with pytest.raises(RecordError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_records(lines, fmt, require_reference=True, strict=True)


def test_schema_file_names_exactly_the_accepted_fields() -> None:
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "record.schema.json").read_text())
    assert set(schema["properties"]) == set(CSV_COLUMNS)


def test_name_parts_sex_and_place_of_birth() -> None:
    lines = ["id,given_name,family_name,sex,place_of_birth,birth_date,reference\n",
             "1,Boris,Yeltsin,m,Butka,01.02.1931,R1\n"]
    (record,) = parse_records(lines, "csv", require_reference=True)
    assert (record.names, record.sex, record.place_of_birth, record.birth_date) == (
        ["Boris Yeltsin"], "M", "Butka", PartialDate(1931, 2, 1))
    assert parse_records(format_csv([record]).splitlines(keepends=True), "csv") == [record]
    assert parse_records(format_jsonl([record]).splitlines(keepends=True), "jsonl") == [record]
    with pytest.raises(RecordError, match="line 2, field 'sex'"):
        parse_records([lines[0], "1,Boris,Yeltsin,Q,Butka,1931,R1\n"], "csv")
