"""How bulk mode's client turns opened items into hits: one hit per (record, partner record), with the union
of the rules that hit and the follow-up key of the record's first key that hit, exactly as intersection mode."""

from __future__ import annotations

import dataclasses

import pytest

from psi.client_query import Hit
from psi.messages import Mode
from psi.profiles import Strength
from psi.records import IdentityDocument, PartialDate, Record
from tests.integration.test_bulk_property import KEY, bulk_in_memory
from tests.protocol_helpers import run_in_memory

PASSPORT = (IdentityDocument("PASSPORT", "X123", "DEU"),)
BORN = PartialDate(1980, 5, 17)


def _person(record_id: str, name: str, documents: tuple[IdentityDocument, ...] = PASSPORT, **labels: str) -> Record:
    return Record(record_id, name, BORN, documents=documents, **labels)


def _both_modes(server: list[Record], client: list[Record]) -> tuple[object, ...]:
    expected = run_in_memory(server, client, Mode.INTERSECTION, key=KEY).hits
    hits = bulk_in_memory(server, client, 4096)
    assert hits == expected
    return hits


def test_two_keys_of_one_record_on_one_partner_record_make_one_hit_with_both_rules() -> None:
    hits = _both_modes([_person("s1", "Anna Berg", reference="R-1", category="wanted")],
                       [_person("c1", "Anna Berg")])
    assert [(h.record_id, h.reference, h.rules) for h in hits] == [("c1", "R-1", ("document", "name-dob"))]


def test_each_partner_record_and_each_local_record_is_its_own_hit() -> None:
    server = [_person("s1", "Anna Berg", reference="R-1"), _person("s2", "Anna Berg", (), reference="R-2")]
    client = [_person("c2", "Anna Berg", ()), _person("c1", "Anna Berg")]
    hits = _both_modes(server, client)
    assert [(h.record_id, h.reference, h.rules) for h in hits] == [
        ("c1", "R-1", ("document", "name-dob")), ("c1", "R-2", ("name-dob",)),
        ("c2", "R-1", ("name-dob",)), ("c2", "R-2", ("name-dob",))]


def test_local_records_that_share_an_id_are_one_record() -> None:
    server = [_person("s1", "Anna Berg", reference="R-1")]
    client = [_person("c1", "Someone Else"), _person("c1", "Anna Berg", ())]
    hits = _both_modes(server, client)
    assert [(h.record_id, h.rules) for h in hits] == [("c1", ("document", "name-dob"))]


def test_a_record_that_hits_several_partner_records_lists_them_by_reference() -> None:
    server = [_person(f"s{i}", "Anna Berg", (), reference=f"R-{9 - i}") for i in range(6)]
    hits = _both_modes(server, [_person("c1", "Anna Berg", ())])
    assert [h.reference for h in hits] == [f"R-{i}" for i in range(4, 10)]


def test_hits_from_columns_are_the_hits_the_constructor_makes_and_stay_frozen() -> None:
    columns = (["c1", "c2"], ["R-1", "R-2"], ["wanted", ""], [("document",), ("name-dob",)],
               [Strength.STRONG, Strength.MEDIUM], [b"\x00" * 32, b"\x01" * 32])
    hits = Hit.from_columns(*columns)
    assert hits == tuple(map(Hit, *columns)) and Hit.from_columns(*([] for _ in columns)) == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        hits[0].reference = "R-2"  # type: ignore[misc]
    with pytest.raises(ValueError, match="one column per field"):
        Hit.from_columns(*columns[:-1], [b""])
