"""The protocol's promise: its result equals the plain intersection, in both modes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from psi.messages import Limits, Mode
from psi.records import PartialDate, Record
from tests.protocol_helpers import run_in_memory

names = st.text(alphabet="abcdeéж ", min_size=1, max_size=6).filter(lambda s: s.strip())
years = st.integers(min_value=1950, max_value=1953)
persons = st.tuples(names, years)
SMALL = Limits(max_batch_size=3, max_query_size=1000)


def _records(prefix: str, people: list[tuple[str, int]]) -> list[Record]:
    return [Record(f"{prefix}{i}", name, PartialDate(year), reference=f"{prefix.upper()}{i}", category="c")
            for i, (name, year) in enumerate(people)]


def _key(name: str, year: int) -> tuple[str, int]:
    return (" ".join(name.casefold().split()), year)


@settings(max_examples=25, deadline=None)
@given(st.lists(persons, max_size=8), st.lists(persons, min_size=1, max_size=8), st.sampled_from(Mode),
       st.booleans())
def test_result_equals_plain_intersection(server_people: list[tuple[str, int]],
                                          client_people: list[tuple[str, int]], mode: Mode,
                                          early_lookups: bool) -> None:
    server = _records("s", server_people)
    client = _records("c", client_people)
    result = run_in_memory(server, client, mode, limits=SMALL, early_lookups=early_lookups)

    server_refs: dict[tuple[str, int], set[str]] = {}
    for rec, person in zip(server, server_people, strict=True):
        server_refs.setdefault(_key(*person), set()).add(rec.reference)
    expected = {(c.record_id, ref) for c, person in zip(client, client_people, strict=True)
                for ref in server_refs.get(_key(*person), set())}
    expected_records = {c for c, _ in expected}

    assert result.hit_records == len(expected_records)
    if mode is Mode.INTERSECTION:
        assert {(h.record_id, h.reference) for h in result.hits} == expected
        assert all(h.rules == ("name-dob",) for h in result.hits)
    else:
        assert result.hits == ()
