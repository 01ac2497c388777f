from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psi import oprf, tags
from psi.messages import TagChunk
from psi.profiles import EXACT_PROFILE, ExactNameBirthDate, Profile, encode_key
from psi.records import IdentityDocument, PartialDate, Record
from psi.tagset import Entry, TagSnapshot, apply_delta, build_snapshot


def test_exact_profile_normalises_case_width_and_spacing() -> None:
    a = Record("1", "  JOSÉ   García ", PartialDate(1980, 1, 2), reference="r")
    b = Record("2", "josé garcía", PartialDate(1980, 1, 2), reference="r")
    c = Record("3", "ＪＯＳＥ́ GARCÍA", PartialDate(1980, 1, 2), reference="r")  # fullwidth + combining
    assert EXACT_PROFILE.match_keys(a) == EXACT_PROFILE.match_keys(b) == EXACT_PROFILE.match_keys(c)


def test_document_numbers_drop_separators() -> None:
    a = Record("1", "x", documents=(IdentityDocument("passport", "C01-X00 T47", "DEU"),), reference="r")
    b = Record("2", "y", documents=(IdentityDocument("PASSPORT", "c01x00t47", "DEU"),), reference="r")
    assert EXACT_PROFILE.match_keys(a) == EXACT_PROFILE.match_keys(b)
    other_country = Record("3", "y", documents=(IdentityDocument("PASSPORT", "C01X00T47", "AUT"),),
                           reference="r")
    assert EXACT_PROFILE.match_keys(other_country) != EXACT_PROFILE.match_keys(a)


def test_keys_are_domain_separated_by_rule_and_unambiguous() -> None:
    assert encode_key("name-dob", ["ab", "c"]) != encode_key("name-dob", ["a", "bc"])
    assert encode_key("document", ["x"]) != encode_key("name-dob", ["x"])


def test_record_without_birth_date_yields_no_name_key() -> None:
    record = Record("1", "Ann Example", reference="r")
    assert EXACT_PROFILE.match_keys(record) == []


def test_profile_hash_pins_the_definition() -> None:
    changed = Profile("exact/1", (ExactNameBirthDate(definition="something else"),))
    assert changed.definition_hash != EXACT_PROFILE.definition_hash
    assert len(EXACT_PROFILE.definition_hash) == 32


@pytest.mark.parametrize(("server", "query", "length"), [
    (1, 1, 8), (1000, 1 << 20, 9), (1 << 20, 1 << 20, 10), (1 << 40, 1 << 40, 15),
])
def test_tag_length_targets_2_to_the_minus_40(server: int, query: int, length: int) -> None:
    assert tags.tag_length(server, query) == length


def test_labels_open_only_with_the_right_key() -> None:
    key = oprf.generate_key()
    match_key = EXACT_PROFILE.match_keys(Record("1", "Ann", PartialDate(1990), reference="r"))[0]
    label = tags.encode_label("REF-1", "arrest")
    [(_, _, tag_material, _, sealed, kept_key)] = tags.epoch_entries(
        [("1", "rule", match_key.value, oprf.input_element(match_key.value), label)], key)
    material, label_key = tags.split_output(oprf.evaluate(key, match_key.value))
    assert (material, label_key) == (tag_material, kept_key)
    assert tags.decode_label(tags.open_label(label_key, sealed) or b"") == ("REF-1", "arrest")
    assert tags.open_label(bytes(32), sealed) is None
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert tags.open_label(label_key, tampered) is None


def test_apply_delta_counts_entries_as_a_multiset() -> None:
    tags, labels = b"aa" + b"bb" + b"bb", [b"1", b"2", b"3"]
    chunk = TagChunk(1, 5, 0, 3, tags=b"cc" + b"bb", labels=(b"4", b"2"), delta=True,
                     removed_tags=b"bb" + b"bb" + b"aa", removed_labels=(b"2", b"2", b"1"))
    merged, merged_labels = apply_delta(tags, labels, 2, [chunk])
    # "bb"/2 removed twice and added once: one fewer; "aa"/1 removed; "cc"/4 added.
    assert sorted(zip([merged[i:i + 2] for i in range(0, len(merged), 2)], merged_labels, strict=True)) == [
        (b"bb", b"3"), (b"cc", b"4")]


_ENTRY = st.tuples(st.sampled_from([bytes([i]) * 32 for i in range(1, 4)]),  # few tags: equal tags, other labels
                   st.sampled_from([b"L1", b"L2", b"L3"]), st.sampled_from([bytes([i]) * 32 for i in range(4, 7)]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_ENTRY, max_size=30), st.data())
def test_a_snapshot_updated_in_place_equals_one_built_anew(before: list[Entry], data: st.DataObject) -> None:
    removed = data.draw(st.lists(st.sampled_from(before), unique_by=id, max_size=len(before)) if before
                        else st.just([]))
    added = data.draw(st.lists(st.one_of(_ENTRY, st.sampled_from(removed)) if removed else _ENTRY, max_size=10))
    after = list(before)
    for entry in removed:
        after.remove(entry)
    after += added

    def built(entries: list[Entry], version: int) -> TagSnapshot:
        return build_snapshot(1, version, 2, [e[0] for e in entries], [e[1] for e in entries],
                              [e[2] for e in entries])

    updated, fresh = built(before, 1).updated(2, added, removed), built(after, 2)
    assert (updated.tags, updated.cardinality_tags, updated.list_version) == (
        fresh.tags, fresh.cardinality_tags, fresh.list_version)
    pairs = sorted(zip([updated.tags[i:i + 2] for i in range(0, len(updated.tags), 2)], updated.labels, strict=True))
    assert pairs == sorted(zip([fresh.tags[i:i + 2] for i in range(0, len(fresh.tags), 2)], fresh.labels, strict=True))
