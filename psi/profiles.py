"""Record -> match keys: named, versioned profiles of rules.

A rule turns a record into zero or more key parts; the profile encodes each
part with its rule id as a length-prefixed, domain-separated OPRF input, so
keys of different rules never collide. The matching-profiles work adds rules
by implementing `Rule`; nothing else changes.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, cached_property
from typing import Protocol

from psi.normalize import (
    ANYASCII_VERSION,
    UNICODE_VERSION,
    cjk_script,
    consonant_count,
    given_family,
    has_vowels,
    korean_family,
    skeleton,
    token_lists,
    word_code,
)
from psi.records import IdentityDocument, PartialDate, Record
from psi.spelling import corrected, corrections, name_words_version

_KEY_DOMAIN = b"psi-match-key-v1"


class Strength(StrEnum):
    STRONG = "strong"
    MEDIUM = "medium"
    WEAK = "weak"


@dataclass(frozen=True, slots=True)  # slots: a bulk match makes one per key, millions of them
class MatchKey:
    """One OPRF input derived from a record by one rule."""

    rule_id: str
    value: bytes


class Rule(Protocol):
    """A named way to derive match keys; `definition` pins its behaviour in the profile hash."""

    @property
    def rule_id(self) -> str: ...

    @property
    def strength(self) -> Strength: ...

    @property
    def definition(self) -> str: ...

    def key_parts(self, record: Record) -> list[tuple[str, ...]]: ...


def normalize_text(text: str) -> str:
    """NFKC, case folding and single spaces: the exact profile's notion of equal."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalize_document_number(number: str) -> str:
    if number.isascii() and number.isalnum():  # most numbers: nothing to drop or fold but the case
        return number.upper()
    return "".join(ch for ch in unicodedata.normalize("NFKC", number).upper() if ch.isalnum())


@dataclass(frozen=True)
class ExactNameBirthDate:
    """Normalised full name + date of birth as given (any precision)."""

    rule_id: str = "name-dob"
    strength: Strength = Strength.MEDIUM
    definition: str = "nfkc-casefold(name) | iso(birth_date)"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        names = record.names
        name = normalize_text(names[0]) if names else ""
        if not name or record.birth_date is None:
            return []
        return [(name, record.birth_date.isoformat())]


@dataclass(frozen=True)
class DocumentNumber:
    """Identity document type + number (separators dropped) + issuing country."""

    rule_id: str = "document"
    strength: Strength = Strength.STRONG
    definition: str = "upper(type) | alnum-upper(number) | country"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        return [
            (normalize_text(doc.doc_type).upper(), normalize_document_number(doc.number), doc.country)
            for doc in record.documents
        ]


def encode_key(rule_id: str, parts: Sequence[str]) -> bytes:
    """Domain-separated, length-prefixed encoding of one key (unambiguous for any parts)."""
    out = [_key_prefix(rule_id)]
    for part in parts:
        raw = part.encode("utf-8")
        out += (len(raw).to_bytes(2, "big"), raw)
    return b"".join(out)


@cache
def _key_prefix(rule_id: str) -> bytes:
    raw = rule_id.encode("utf-8")
    return _KEY_DOMAIN + len(raw).to_bytes(2, "big") + raw


@dataclass(frozen=True)
class Profile:
    """A named, versioned list of rules both nodes must share.

    `versions` names the tables outside this code that shape its keys (Unicode, the transliteration
    table); with the keys of GOLDEN_RECORDS they enter the profile hash, so nodes whose normalisation
    differs refuse each other instead of silently missing hits.
    """

    profile_id: str
    rules: tuple[Rule, ...]
    versions: tuple[tuple[str, str], ...] = field(default=())

    def match_keys(self, record: Record) -> list[MatchKey]:
        """Every distinct key the record yields, in rule order."""
        return [MatchKey(self.rules[n].rule_id, value) for n, value in self.key_values(record)]

    def key_values(self, record: Record) -> list[tuple[int, bytes]]:
        """`match_keys` as (the rule's place in `rules`, the key's value): no object per key, for bulk mode."""
        keys: list[tuple[int, bytes]] = []
        seen: set[bytes] = set()
        for n, rule in enumerate(self.rules):
            for parts in rule.key_parts(record):
                value = encode_key(rule.rule_id, parts)
                if value not in seen:
                    seen.add(value)
                    keys.append((n, value))
        return keys

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.rule_id == rule_id:
                return rule
        raise KeyError(rule_id)

    @cached_property
    def golden_digest(self) -> bytes:
        """SHA-256 over the keys of GOLDEN_RECORDS: per record, I2OSP(count, 2) and each lp(key), sorted."""
        digest = hashlib.sha256()
        for record in GOLDEN_RECORDS:
            keys = sorted(k.value for k in self.match_keys(record))
            digest.update(len(keys).to_bytes(2, "big"))
            for key in keys:
                digest.update(len(key).to_bytes(2, "big") + key)
        return digest.digest()

    def definition_json(self) -> str:
        """The canonical JSON the profile hash is taken over (docs/protocol.md section 2)."""
        return json.dumps(
            {
                "profile": self.profile_id,
                "key_domain": _KEY_DOMAIN.decode(),
                "rules": [
                    {"id": r.rule_id, "strength": r.strength.value, "definition": r.definition}
                    for r in self.rules
                ],
                "versions": dict(self.versions),
                "golden": self.golden_digest.hex(),
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @cached_property
    def definition_hash(self) -> bytes:
        """SHA-256 over the canonical JSON of the profile's definition, versions and golden keys."""
        return hashlib.sha256(self.definition_json().encode()).digest()


def _names(record: Record) -> list[list[str]]:
    """The tokens of the record's name and of each alias (any script, see psi.normalize)."""
    return [t for n in record.names for t in token_lists(n)]


def _full_date(record: Record) -> str | None:
    """The full date with day and month in either order (a swapped day and month give one key)."""
    d = record.birth_date
    if d is None or d.day is None or d.month is None:
        return None
    century, decade = divmod(d.year, 100)
    low, high = sorted(_digits_sorted(n) for n in (d.month, d.day))
    return f"{century:02d}{_digits_sorted(decade)}|{low}|{high}"


_DATE = "century, digit-sorted(yy), sorted(digit-sorted(month), digit-sorted(day))"


def _digits_sorted(number: int) -> str:
    """Two digits in ascending order: a transposition (85/58, 12/21, 10/01) gives one form."""
    return "".join(sorted(f"{number:02d}"))


def _corrected_readings(tokens: list[str], limit: int = 2) -> list[list[str]]:
    """The tokens with each unknown word read as the known name(s) it is a slip of (psi.spelling)."""
    out: list[list[str]] = [[]]
    for word in tokens:
        out = [[*done, fixed] for done in out for fixed in corrections(word)]
    return out if len(out) <= limit else [[corrected(w) for w in tokens]]


def _written(record: Record) -> list[tuple[list[str], int | None, bool]]:
    """Each name's tokens, where its given name ends (None: by convention) and whether it is CJK script."""
    out: list[tuple[list[str], int | None, bool]] = []
    if record.given_name.strip() or record.family_name.strip():
        for given in token_lists(record.given_name) or [[]]:
            out += [(given + [korean_family(w) for w in family], len(given), False)
                    for family in token_lists(record.family_name) or [[]]]
    for name in (record.name, *record.aliases):
        parts = _capitals_family(name)
        if parts:  # WANG Xiaoming, Xiaoming WANG: the order is written
            out += [(g + f, len(g), False) for g in token_lists(parts[0]) for f in token_lists(parts[1])]
        else:
            out += [(tokens, None, cjk_script(name)) for tokens in token_lists(name)]
    return out


def _capitals_family(name: str) -> tuple[str, str] | None:
    """(given, family) of a name whose family name, and only it, is written in capitals, at its start or end.

    The convention of passports and many official lists (COHEN Ben, Xiaoming WANG); a name all in
    capitals, all in mixed case or with a word all in lower case says nothing.
    """
    words = name.split()
    caps = [sum(ch.isalpha() for ch in w) >= 2 and w.isupper() for w in words]
    mixed = [w[:1].isupper() and any(ch.islower() for ch in w) for w in words]  # not all lower case: no convention
    if not any(caps) or all(caps) or not all(c or m for c, m in zip(caps, mixed, strict=True)):
        return None
    n = caps.index(False) if caps[0] else len(caps) - caps[::-1].index(False)
    if caps[0] and not any(caps[n:]):
        return " ".join(words[n:]), " ".join(words[:n])
    if not caps[0] and all(caps[n:]) and not any(caps[:n]):
        return " ".join(words[:n]), " ".join(words[n:])
    return None


_ORDER = ("given_family(fields, else CJK script family first, else given first; reversed where no role contradicts "
          "it, with a CJK syllable where roles prove it)")


@dataclass(frozen=True)
class NameBirthDate:
    """Given name and family name, each its words joined, in order (psi.normalize.given_family) + full date (medium)."""

    rule_id: str = "name-dob"
    strength: Strength = Strength.MEDIUM
    definition: str = f"corrections(joined given | joined family) of {_ORDER} over token_lists(name|alias) | {_DATE}"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        date = _full_date(record)
        if not date:
            return []
        # The order is read from the words as written; the correction then applies to each part.
        return sorted({("".join(fixed[:len(given)]), "".join(fixed[len(given):]), date)
                       for tokens, split, cjk in _written(record)
                       for given, family in given_family(tokens, split, cjk=cjk)
                       for fixed in _corrected_readings(given + family)})


_MIN_CODE_CONSONANTS = 4  # a medium code key needs at least this many consonants over two or more words


@dataclass(frozen=True)
class NameCodeBirthDate:
    """Name codes of the words (psi.normalize.name_code), given name then family name + full date of birth (medium)."""

    rule_id: str = "code-dob"
    strength: Strength = Strength.MEDIUM
    definition: str = (f"word_code(given words + family words of {_ORDER} over token_lists(name|alias)), "
                       f"not CJK script, >=2 words, one with vowels, >={_MIN_CODE_CONSONANTS} consonants | {_DATE}")

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        date = _full_date(record)
        if not date:
            return []
        parts: set[tuple[str, ...]] = set()
        # A CJK-script name is left to name-dob: its reading writes every vowel, and folding them into
        # classes merges different syllables (미영 Miyeong / 미정 Mijeong, 骆 Luo / 陆 Lu).
        for tokens, split, _ in (w for w in _written(record) if not w[2]):
            codes = {t: word_code(t) for t in tokens}
            if (len(tokens) >= 2 and any(map(has_vowels, tokens))
                    and sum(map(consonant_count, codes.values())) >= _MIN_CODE_CONSONANTS):
                parts.update((" ".join(codes[t] for t in given + family), date)
                             for given, family in given_family(tokens, split, cjk=False))
        return sorted(parts)


@dataclass(frozen=True)
class SkeletonBirthDate:
    """Loose consonant skeletons (no vowels, no h), sorted + full date of birth (weak).

    Bridges abjad scripts (محمد / Mohammed) and vowel typos, but merges names that differ only in
    their vowels (Hassan / Hussein), so it is a lead only.
    """

    rule_id: str = "skeleton-dob"
    strength: Strength = Strength.WEAK
    definition: str = "sorted(skeleton(token_lists(name|alias))) | " + _DATE

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        date = _full_date(record)
        return sorted({(" ".join(sorted(map(skeleton, t))), date) for t in _names(record)}) if date else []


@dataclass(frozen=True)
class SkeletonDropOneBirthDate:
    """The loose skeletons with one word left out + full date of birth (weak).

    One side's full set meets the other's set without its extra word (skeleton-dob), so a missing
    or extra name part matches; two sets without the same misspelt word match a one-typo variant.
    """

    rule_id: str = "skeleton-drop-one-dob"
    strength: Strength = Strength.WEAK
    definition: str = "for each i sorted(skeletons without word i), >=2 words | " + _DATE

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        date = _full_date(record)
        if not date:
            return []
        parts = set()
        for tokens in _names(record):
            skeletons = [skeleton(t) for t in tokens]
            for i in range(len(skeletons) if len(skeletons) > 1 else 0):
                parts.add((" ".join(sorted(skeletons[:i] + skeletons[i + 1:])), date))
        return sorted(parts)


@dataclass(frozen=True)
class SkeletonBirthYear:
    """Loose skeletons sorted + year of birth: partial, reformatted or mistyped dates (weak)."""

    rule_id: str = "skeleton-year"
    strength: Strength = Strength.WEAK
    definition: str = "sorted(skeleton(token_lists(name|alias))) | birth year"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        if record.birth_date is None:
            return []
        year = f"{record.birth_date.year:04d}"
        return sorted({(" ".join(sorted(map(skeleton, t))), year) for t in _names(record)})


def _golden(record_id: str, name: str, birth_date: str | None = None, *, aliases: tuple[str, ...] = (),
            given_name: str = "", family_name: str = "",
            documents: tuple[tuple[str, str, str], ...] = ()) -> Record:
    return Record(record_id, name, PartialDate.parse(birth_date) if birth_date else None,
                  documents=tuple(IdentityDocument(*d) for d in documents), aliases=aliases,
                  given_name=given_name, family_name=family_name)


# The golden records of the profile hash: every script and normalisation step the profiles handle,
# as records after import (fullwidth letters written as escapes). Changing one changes every
# profile's hash (docs/matching.md lists them).
GOLDEN_RECORDS: tuple[Record, ...] = (
    _golden("latin", "Dr. José-María  O'Connor García", "1980-03-15",
            documents=(("Passport", "C01-X00 T47", "DEU"),)),
    _golden("particles", "Ursula von der Leyen", "1958-10-08", aliases=("Le Van Thanh", "Ben Cohen")),
    _golden("case-folding", "STRAẞE Weiß İNAN ΟΔΥΣΣΕΥΣ ǅemal", "1970-12-01"),
    _golden("compatibility", "\uff2a\uff2f\uff28\uff2e\u3000\uff33\uff4d\uff49\uff54\uff48\u00a0ﬁtz Jose\u0301 ⅣⅡ",
            "2000-02-29"),
    _golden("cyrillic", "Ельцин Борис Николаевич", "1931-02-01", aliases=("Boris Yeltsin", "Jelzin, Boris")),
    _golden("greek", "Γιώργος Παπαδόπουλος", "1975-07"),
    _golden("arabic", "عبد الرحمن محمد المصري", "1990-12-05",
            aliases=("Abdul Rahman Mohammed Almasri", "Nur ad-Din Habibullah", "Elsayed Abdurrahman")),
    _golden("hebrew", "יוסף כהן", "1985-01-20", aliases=("Yosef Cohen",)),
    _golden("chinese", "王小明", "2001-11-09", aliases=("Wang Xiaoming", "Xiao-Ming WANG")),
    _golden("korean", "이순신", "1545-04-28", aliases=("Yi Sun-sin",)),
    _golden("korean-parts", "", "1999-09-09", given_name="Min Jun", family_name="Gim"),
    _golden("japanese", "山田 太郎", "1970-01-01", aliases=("ヤマダ タロウ", "やまだ たろう")),
    _golden("devanagari", "राहुल शर्मा", "1988-08-08"),
    _golden("thai", "สมชาย ใจดี", "1979"),
    _golden("georgian-armenian", "მიხეილ სააკაშვილი", "1967-12-21", aliases=("Արամ Խաչատրյան",)),
    _golden("ethiopic", "አበበ ቢቂላ", "1932-08-07"),
    _golden("vietnamese", "Nguyễn Thị Minh Khai", "1910-11-01"),
    _golden("latin-camel-digits", "McDonald DeVito 007", "1920-11-11"),
    _golden("title-short", "Dr Ana", "1990-06-07", aliases=("Mr Omar Ali Jr",)),
    _golden("name-and-parts", "Hans Meier", "1964-08-12", given_name="Johann", family_name="Meier"),
    _golden("aliases-only", "", "1949-10", aliases=("Ilich Ramírez Sánchez", "Carlos")),
    _golden("documents-only", "", documents=(("ID card", "\uff38\uff14\uff32\uff34-bpfw٤", "FRA"),
                                             ("passport", "ab 12 cd", "GBR"))),
)

EXACT_PROFILE = Profile("exact/1", (DocumentNumber(), ExactNameBirthDate()), (("unicode", UNICODE_VERSION),))
STANDARD_PROFILE = Profile("standard/5", (DocumentNumber(), NameBirthDate(), NameCodeBirthDate(), SkeletonBirthDate(),
                                          SkeletonDropOneBirthDate(), SkeletonBirthYear()),
                           (("unicode", UNICODE_VERSION), ("anyascii", ANYASCII_VERSION),
                            ("name-words", name_words_version())))
PROFILES: dict[str, Profile] = {p.profile_id: p for p in (EXACT_PROFILE, STANDARD_PROFILE)}
