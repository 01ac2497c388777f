"""Known-name spelling correction, variant groups, digit-transposed dates and Greek readings (issue 14)."""

from __future__ import annotations

import pytest

from psi import spelling
from psi.normalize import name_code, readings, token_lists, word_code
from psi.profiles import STANDARD_PROFILE, Strength
from psi.records import PartialDate, Record


def _medium(a: str, b: str, dob_a: str = "1985-03-12", dob_b: str = "1985-03-12") -> set[str]:
    keys_a = {k.value: k.rule_id for k in STANDARD_PROFILE.match_keys(Record("a", a, PartialDate.parse(dob_a)))}
    keys_b = {k.value for k in STANDARD_PROFILE.match_keys(Record("b", b, PartialDate.parse(dob_b)))}
    return {rule for value, rule in keys_a.items()
            if value in keys_b and STANDARD_PROFILE.rule(rule).strength is not Strength.WEAK}


def test_a_known_name_is_never_corrected() -> None:
    for word in ("martin", "marvin", "janet", "janett", "kathe", "kathy"):
        assert spelling.known_name(word)
        assert spelling.corrections(word) == (word,)


@pytest.mark.parametrize(("typed", "name"), [
    ("gabirel", "gabriel"),      # two letters swapped
    ("schmdit", "schmidt"),
    ("sebastain", "sebastian"),
    ("rnichael", "michael"),     # an OCR confusion: rn for m
    ("alexnder", "alexander"),   # a letter left out
])
def test_an_unknown_word_reads_as_the_known_name_it_is_a_slip_of(typed: str, name: str) -> None:
    assert not spelling.known_name(typed)
    assert name in spelling.corrections(typed)


def test_a_rare_name_reads_as_itself_and_as_the_listed_name_it_is_clearly_a_slip_of() -> None:
    assert spelling.known_name("alexantra") and not spelling.listed_name("alexantra")  # only rigour's data has it
    assert spelling.corrections("alexantra") == ("alexantra", "alexandra")
    assert spelling.corrections("husain") == ("husain",)  # Hussain or Hosain: itself only


def test_a_rare_name_keys_code_dob_by_its_own_variant_group() -> None:
    assert word_code("husain") == word_code("hussein") == word_code("hussain")  # one rigour name item
    assert word_code("rula") != word_code("rola")  # one code, but no name item joins them
    assert word_code("hussaen") == word_code("hussain")  # an unknown slip: the group of its correction


def test_a_slip_of_a_rare_name_reads_as_that_name() -> None:
    assert not spelling.listed_name("yeltsin")
    assert spelling.corrections("yeltsn") == ("yeltsin",)


def test_up_to_three_close_readings_are_kept_and_four_are_too_unsure() -> None:
    assert spelling.corrections("mller") == ("muller", "miller", "moller")
    assert spelling.corrected("mller") == "muller"
    assert len(spelling.ranked("mon")) > 3 and spelling.corrections("mon") == ("mon",)


def test_a_three_letter_word_is_read_only_as_a_letter_left_out_or_two_swapped() -> None:
    assert spelling.corrections("jhn") == ("john",)
    assert spelling.corrections("tmo") == ("tom",)
    assert spelling.corrections("mon") == ("mon",)  # one letter changed: Min, Man, Jon are all names


def test_a_slip_has_the_role_its_readings_share() -> None:
    assert spelling.role("smiht") == "f"  # Smith only
    readings = spelling.corrections("reyis")
    assert {spelling.role(w) for w in readings} == {"f", "g"}  # Reyes or Regis
    assert spelling.role("reyis") == ""


def test_romanised_chinese_and_korean_syllables_are_not_corrected() -> None:
    assert spelling.cjk_syllables("sunsin")
    assert spelling.corrections("sunsin") == ("sunsin",)


@pytest.mark.parametrize(("a", "b"), [
    ("Martin Weber", "Marvin Weber"),       # two real names one letter apart: two people
    ("Janet Gute", "Janett Gute"),
    ("Kathe Mies", "Kathy Mies"),
    ("Alexandra Anderson", "Alexandria Anderson"),
    ("Alisha Atkinson", "Alyssa Atkinson"),
    ("Gabriel Martin", "Gabrielle Martin"),
])
def test_different_real_names_do_not_meet_at_medium(a: str, b: str) -> None:
    assert not _medium(a, b)


@pytest.mark.parametrize(("a", "b"), [
    ("Gabriel Martin", "Gabirel Martin"),   # typing slips in either part
    ("Anna Schmidt", "Anna Schmdit"),
    ("Michael Brown", "Rnichael Brown"),
    ("Omar Hassan", "Umar Hasan"),          # spelling variants of one name (a common name symbol in rigour)
    ("Alexei Petrov", "Alexey Petrov"),
    ("Yosef Levi", "Josef Levi"),           # an initial glide
])
def test_slips_and_variants_of_one_name_meet_at_medium(a: str, b: str) -> None:
    assert _medium(a, b)


@pytest.mark.parametrize(("dob_a", "dob_b"), [
    ("1985-03-12", "1958-03-12"),   # year digits transposed
    ("1985-03-12", "1985-03-21"),   # day digits transposed
    ("1985-10-12", "1985-01-12"),   # month digits transposed
    ("1985-03-12", "1985-12-03"),   # day and month swapped
])
def test_a_transposed_date_meets_at_medium(dob_a: str, dob_b: str) -> None:
    assert "name-dob" in _medium("Maria Schmidt", "Maria Schmidt", dob_a, dob_b)


def test_another_date_does_not_meet_at_medium() -> None:
    assert not _medium("Maria Schmidt", "Maria Schmidt", "1985-03-12", "1985-03-13")


def test_greek_script_is_read_as_elot_and_phonetically() -> None:
    assert readings("Γιώργος Παπαδόπουλος") == ["giorgos papadopoulos", "yiorgos papadopoulos"]
    assert ["eftychia", "miliaki"] not in token_lists("Ευτυχία Μηλιάκη")  # anyascii's ey/oy readings are not used
    assert _medium("Ευτυχία Μηλιάκη", "Eitichia Miliaki")
    assert _medium("Κωνσταντίνος Παπαδόπουλος", "Konstantinos Papadopoulos")


def test_the_known_name_list_agrees_with_the_code() -> None:
    """Rebuilding name_words.txt is needed when name_code changes: its code column must still hold."""
    lines = spelling._raw().decode().splitlines()
    checked = 0
    for line in lines[::97]:
        word, _, reading, code, _ = line.split()
        if reading != "-":
            assert code == name_code(word), f"{word}: rerun benchmarks/data/make_name_words.py"
            assert word_code(word) == "=" + reading
            checked += 1
    assert checked > 100


@pytest.mark.parametrize(("word", "expected"), [("smith", "f"), ("john", "g"), ("thomas", ""), ("smiht", "f"),
                                                ("kim", "f"), ("qzxv", "")])
def test_a_word_has_the_role_its_name_mostly_has(word: str, expected: str) -> None:
    assert spelling.role(word) == expected
