"""Pinned normalisation across scripts and spellings, and the standard profile's rules."""

from __future__ import annotations

import pytest

from psi.normalize import name_tokens, skeleton
from psi.profiles import EXACT_PROFILE, STANDARD_PROFILE
from psi.records import PartialDate, Record


@pytest.mark.parametrize(("name", "tokens"), [
    ("Ельцин Борис Николаевич", ["eltsin", "boris", "nikolaevich"]),          # Cyrillic
    ("Γιώργος Παπαδόπουλος", ["giorgos", "papadopoylos"]),                   # Greek
    ("محمد بن سلمان", ["mhmd", "slmn"]),                                     # Arabic, particle dropped
    ("王伟", ["wang", "wei"]),                                               # Chinese: family syllable, then the rest
    ("王小明", ["wang", "xiaoming"]),
    ("중수 홍", ["jungsu", "hong"]),                                          # a run written apart is one word
    ("Hans MÜLLER", ["hans", "muller"]),                                     # case and diacritics
    ("Dr. Jean-Luc de la Fontaine", ["jean", "luc", "fontaine"]),            # title, particles, hyphen
    ("O'Brien,  Seán", ["obrien", "sean"]),                                   # punctuation and spacing
])
def test_name_tokens(name: str, tokens: list[str]) -> None:
    assert name_tokens(name) == tokens


@pytest.mark.parametrize("spellings", [
    ["Yeltsin", "Eltsine", "Jelzin", "Ельцин"],          # English, French, German schemes, Cyrillic
    ["Mohammed", "Muhammad", "Mohamed", "محمد"],         # Arabic name spellings
    ["Mansur", "Mansour", "منصور"],                       # abjad w for the vowel u
    ["Papadopoulos", "Παπαδόπουλος"],
    ["Mueller", "Müller", "Muller"],                      # umlaut written out or dropped
    ["Nikolaevich", "Nikolayevich"],
])
def test_skeletons_agree_across_spellings(spellings: list[str]) -> None:
    assert len({" ".join(skeleton(t) for t in name_tokens(s)) for s in spellings}) == 1


def _rules_hit(a: Record, b: Record) -> set[str]:
    keys_a = {k.value: k.rule_id for k in STANDARD_PROFILE.match_keys(a)}
    return {keys_a[k.value] for k in STANDARD_PROFILE.match_keys(b) if k.value in keys_a}


DOB = PartialDate(1931, 2, 1)


SKELETONS = {"skeleton-dob", "skeleton-drop-one-dob", "skeleton-year"}


@pytest.mark.parametrize(("b", "rules"), [
    (Record("b", "Ельцин Борис", DOB, reference="r"), {"code-dob", *SKELETONS}),                 # script
    (Record("b", "Jelzin Boris", DOB, reference="r"), {"code-dob", *SKELETONS}),                 # scheme
    (Record("b", "Yeltsin Boris", DOB, reference="r"), {"name-dob", "code-dob", *SKELETONS}),    # order
    (Record("b", "Boris Yeltsn", DOB, reference="r"), {"name-dob", "code-dob", *SKELETONS}),     # vowel typo
    (Record("b", "Boris Yeltxin", DOB, reference="r"), {"name-dob", "skeleton-drop-one-dob"}),   # consonant typo
    (Record("b", "B. Yeltsin", DOB, reference="r"), {"skeleton-drop-one-dob"}),                  # initial
    (Record("b", "Boris Yeltsin", PartialDate(1931), reference="r"), {"skeleton-year"}),         # partial date
    (Record("b", "Boris Yeltsin", PartialDate(1931, 1, 2), reference="r"),
     {"name-dob", "code-dob", *SKELETONS}),                                                       # day/month swap
    (Record("b", "Ivan Petrov", DOB, reference="r", aliases=("Boris Yeltsin",)),
     {"name-dob", "code-dob", *SKELETONS}),                                                       # alias
    (Record("b", "Boris Yeltsin", PartialDate(1932, 2, 1), reference="r"), set()),               # another person
])
def test_standard_profile_rules(b: Record, rules: set[str]) -> None:
    a = Record("a", "Boris Yeltsin", DOB, reference="r")
    assert _rules_hit(a, b) == rules


def test_exact_profile_misses_what_the_standard_one_finds() -> None:
    a = Record("a", "Boris Yeltsin", DOB, reference="r")
    b = Record("b", "Ельцин Борис", DOB, reference="r")
    exact = {k.value for k in EXACT_PROFILE.match_keys(a)} & {k.value for k in EXACT_PROFILE.match_keys(b)}
    assert not exact and _rules_hit(a, b)


@pytest.mark.parametrize(("text", "date"), [
    ("03.02.1980", PartialDate(1980, 2, 3)), ("3/2/1980", PartialDate(1980, 2, 3)),
    ("1980/02/03", PartialDate(1980, 2, 3)), ("19800203", PartialDate(1980, 2, 3)),
    ("02.1980", PartialDate(1980, 2)),
])
def test_other_date_notations(text: str, date: PartialDate) -> None:
    assert PartialDate.parse(text) == date
