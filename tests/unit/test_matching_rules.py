"""standard/5: pairs of different people that must not meet at medium, and cross-script pairs that must."""

from __future__ import annotations

import pytest

from psi.profiles import STANDARD_PROFILE, Strength
from psi.records import PartialDate, Record

DOB = PartialDate(1985, 3, 7)
MEDIUM = {r.rule_id for r in STANDARD_PROFILE.rules if r.strength is not Strength.WEAK}


def _medium_rules(a_name: str, b_name: str) -> set[str]:
    a, b = Record("a", a_name, DOB), Record("b", b_name, DOB)
    keys = {k.value: k.rule_id for k in STANDARD_PROFILE.match_keys(a)}
    return {keys[k.value] for k in STANDARD_PROFILE.match_keys(b) if k.value in keys} & MEDIUM


@pytest.mark.parametrize(("a", "b"), [
    ("Hassan Ali Omar", "Hussein Ali Omar"),        # vowels that mark another name
    ("Aleksandr Ivanov", "Aleksandra Ivanova"),     # male and female forms
    ("Jan Kowalski", "Jana Kowalska"),
    ("Alexander Allen", "Alexandria Allen"),
    ("Omar Said", "Amir Said"),
    ("Ana Li", "Ian Li"),                          # short names keep their letters
    ("Lan Wang", "Lin Wang"),
    ("Ping Fan", "Peng Fan"),
    ("Xiang Liu", "Xiong Liu"),
    ("Gerasim Zaytsev", "Gerasim Kazakov"),         # ts/z stay apart from k
    ("Gerasim Veselov", "Gerasim Vasilev"),
    ("Seoyeon Hong", "Seojun Hong"),
    ("Jeongsu Hong", "Yeongsu Hong"),
    ("Ali Hassan Omar", "Omar Hassan Ali"),         # another order that is not a rotation
    ("Wang Xiaoming", "Wang Mingxiao"),
    ("Lin Gao", "玲 敖"),                            # syllables split elsewhere: Lin Gao / Ling Ao
    ("Sumin Jeong", "정수 민"),                       # Sumin Jeong / Jeongsu Min
    ("Jeongsun O", "정수 노"),
    ("중수 홍", "Jeongsu Hong"),                      # a given syllable is no family name (Jung is not Jeong)
    ("중수 신", "정수 신"),
    ("미영 손", "미정 손"),                            # CJK script: every vowel counts
    ("Mijeong Gwak", "미영 곽"),
    ("Alexander Anthony", "Anthony Alexander"),     # a swap of two names common in both roles
    ("Xiang Fan", "Fan Xiang"),
    ("项帆", "范想"),                                  # Han family name first: Fan Xiang / Xiang Fan
    ("Anna Adams", "Ana Adams"),                    # two widespread Latin-script names, not one
    ("Ghassan Miller", "Hassan Miller"),            # a first letter more is another name, no slip
])
def test_different_people_do_not_meet_at_medium(a: str, b: str) -> None:
    assert _medium_rules(a, b) == set()


@pytest.mark.parametrize(("a", "b"), [
    ("Abd al-Rahman al-Masri", "Abdulrahman Almasri"),    # Abd compounds, article apart / attached
    ("Abdel Aziz Hassan", "Abd-ul-Aziz Hassan"),
    ("Abdurrahman Hassan", "Abd al-Rahman Hassan"),
    ("Nur ad-Din Zangi", "Nureddin Zangi"),
    ("王小明", "Wang Xiaoming"),                          # Chinese characters and pinyin, one word or two
    ("王小明", "Xiao Ming WANG"),
    ("김민준", "Gim Min-jun"),                             # Hangul, another family-name romanisation
    ("김민준", "Kim Minjun"),
    ("이순신", "Yi Sun-sin"),
    ("Park Ji Seong", "Bak Jiseong"),
    ("Yosef Cohen", "Iosif Cohen"),                        # Hebrew and Greek initial consonants
    ("Josef Cohen", "Yosef Cohen"),
    ("Γιώργος Παπαδόπουλος", "Yorgos Papadopoulos"),
    ("Dr John Smith", "John Smith"),                       # a title on one side
    ("Ben Cohen", "COHEN Ben"),                            # a particle that is a given name
    ("Wang Bin", "Bin Wang"),
    ("Boris Yeltsin", "Ельцин Борис"),
    ("Mohammed Hussein", "Muhammad Husain"),
    ("Omar Hassan", "Umar Hasan"),
    ("梁秀云", "Liang XiuYun"),                            # Yun inside a given name is no family name
    ("尉斌刚", "Wei BinGang"),                             # Bin inside a given name is no particle
    ("정수 민", "Jeong-su Min"),
    ("김민준", "Minjun Kim"),
    ("Jose Antonio Pinedo Garcia", "Pinedo Garcia Jose Antonio"),
    ("Natalia Smith", "Natalya Smith"),                    # transliterations of one name
    ("Wang Xiaoming", "Xiaoming Wang"),                    # roles prove the order
    ("Boris Nikolayevich Yeltsin", "Ельцин Борис Николаевич"),  # a patronymic follows the given name
])
def test_cross_script_pairs_meet_at_medium(a: str, b: str) -> None:
    assert _medium_rules(a, b)


def test_a_short_name_yields_no_medium_code_key() -> None:
    keys = STANDARD_PROFILE.match_keys(Record("a", "Li Na", DOB))
    assert "code-dob" not in {k.rule_id for k in keys}


def test_the_default_profile_stays_within_ten_keys_for_a_three_word_name() -> None:
    record = Record("a", "Boris Nikolayevich Yeltsin", DOB)
    assert len(STANDARD_PROFILE.match_keys(record)) <= 10


def test_a_full_name_written_family_first_meets_the_name_fields_when_the_roles_prove_it() -> None:
    fields = Record("a", "", DOB, given_name="John", family_name="Smith")
    for written, meets in (("Smith John", True), ("SMITH John", True), ("John Smith", True), ("Smith Jonh", True)):
        keys = {k.value for k in STANDARD_PROFILE.match_keys(fields)}
        found = {k.rule_id for k in STANDARD_PROFILE.match_keys(Record("b", written, DOB)) if k.value in keys}
        assert bool(found & MEDIUM) is meets, written


def test_swapped_name_fields_meet_at_weak_when_the_roles_cannot_tell() -> None:
    a = Record("a", "", DOB, given_name="Alexander", family_name="Anthony")
    b = Record("b", "", DOB, given_name="Anthony", family_name="Alexander")
    keys = {k.value: k.rule_id for k in STANDARD_PROFILE.match_keys(a)}
    found = {keys[k.value] for k in STANDARD_PROFILE.match_keys(b) if k.value in keys}
    assert found and not found & MEDIUM


def test_a_full_name_written_family_first_meets_the_name_fields_when_no_role_contradicts_it() -> None:
    fields = Record("a", "", DOB, given_name="Jordan", family_name="Taylor")  # both common in either role
    keys = {k.value for k in STANDARD_PROFILE.match_keys(fields)}
    found = {k.rule_id for k in STANDARD_PROFILE.match_keys(Record("b", "Taylor Jordan", DOB)) if k.value in keys}
    assert found & MEDIUM


def test_a_word_in_lower_case_is_no_capitals_convention() -> None:
    fields = Record("a", "", DOB, given_name="Sarah", family_name="Merrill")
    keys = {k.value for k in STANDARD_PROFILE.match_keys(fields)}
    found = {k.rule_id for k in STANDARD_PROFILE.match_keys(Record("b", "SARAH merrill", DOB)) if k.value in keys}
    assert found & MEDIUM
