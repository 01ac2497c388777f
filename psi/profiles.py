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
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from psi.normalize import (
    consonant_count,
    has_vowels,
    joined_rotation,
    min_rotation,
    name_code,
    name_tokens,
    skeleton,
)
from psi.records import Record

_KEY_DOMAIN = b"psi-match-key-v1"


class Strength(StrEnum):
    STRONG = "strong"
    MEDIUM = "medium"
    WEAK = "weak"


@dataclass(frozen=True)
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
    return "".join(ch for ch in unicodedata.normalize("NFKC", number).upper() if ch.isalnum())


@dataclass(frozen=True)
class ExactNameBirthDate:
    """Normalised full name + date of birth as given (any precision)."""

    rule_id: str = "name-dob"
    strength: Strength = Strength.MEDIUM
    definition: str = "nfkc-casefold(name) | iso(birth_date)"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        name = normalize_text(record.names[0]) if record.names else ""
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
    out = bytearray(_KEY_DOMAIN)
    for item in (rule_id, *parts):
        raw = item.encode("utf-8")
        out += len(raw).to_bytes(2, "big") + raw
    return bytes(out)


@dataclass(frozen=True)
class Profile:
    """A named, versioned list of rules both nodes must share."""

    profile_id: str
    rules: tuple[Rule, ...]

    def match_keys(self, record: Record) -> list[MatchKey]:
        """Every distinct key the record yields, in rule order."""
        keys: list[MatchKey] = []
        seen: set[bytes] = set()
        for rule in self.rules:
            for parts in rule.key_parts(record):
                value = encode_key(rule.rule_id, parts)
                if value not in seen:
                    seen.add(value)
                    keys.append(MatchKey(rule.rule_id, value))
        return keys

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.rule_id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def definition_hash(self) -> bytes:
        """SHA-256 over the canonical JSON of the profile's definition."""
        canonical = json.dumps(
            {
                "profile": self.profile_id,
                "key_domain": _KEY_DOMAIN.decode(),
                "rules": [
                    {"id": r.rule_id, "strength": r.strength.value, "definition": r.definition}
                    for r in self.rules
                ],
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).digest()


def _names(record: Record) -> list[list[str]]:
    """The tokens of the record's name and of each alias (any script, see psi.normalize)."""
    return [t for t in (name_tokens(n) for n in record.names) if t]


def _full_date(record: Record) -> str | None:
    """The full date with day and month in either order (a swapped day and month give one key)."""
    d = record.birth_date
    if d is None or d.day is None or d.month is None:
        return None
    low, high = sorted((d.month, d.day))
    return f"{d.year:04d}|{low:02d}|{high:02d}"


@dataclass(frozen=True)
class NameBirthDate:
    """The name's letters, read from their smallest rotation + full date of birth (medium)."""

    rule_id: str = "name-dob"
    strength: Strength = Strength.MEDIUM
    definition: str = "joined_rotation(name_tokens(name|alias)) | year, sorted(month, day)"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        date = _full_date(record)
        return sorted({(joined_rotation(t), date) for t in _names(record)}) if date else []


_MIN_CODE_CONSONANTS = 4  # a medium code key needs at least this many consonants over two or more words


@dataclass(frozen=True)
class NameCodeBirthDate:
    """Name codes of the words (psi.normalize.name_code), smallest rotation + full date of birth (medium)."""

    rule_id: str = "code-dob"
    strength: Strength = Strength.MEDIUM
    definition: str = (f"min_rotation(name_code(name_tokens(name|alias))), >=2 words with vowels, "
                       f">={_MIN_CODE_CONSONANTS} consonants | year, sorted(month, day)")

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        date = _full_date(record)
        if not date:
            return []
        parts = set()
        for tokens in _names(record):
            codes = [name_code(t) for t in tokens]
            if (len(codes) >= 2 and all(map(has_vowels, tokens))
                    and sum(map(consonant_count, codes)) >= _MIN_CODE_CONSONANTS):
                parts.add((" ".join(min_rotation(codes)), date))
        return sorted(parts)


@dataclass(frozen=True)
class SkeletonBirthDate:
    """Loose consonant skeletons (no vowels, no h), sorted + full date of birth (weak).

    Bridges abjad scripts (محمد / Mohammed) and vowel typos, but merges names that differ only in
    their vowels (Hassan / Hussein), so it is a lead only.
    """

    rule_id: str = "skeleton-dob"
    strength: Strength = Strength.WEAK
    definition: str = "sorted(skeleton(name_tokens(name|alias))) | year, sorted(month, day)"

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
    definition: str = "for each i sorted(skeletons without word i), >=2 words | year, sorted(month, day)"

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
    definition: str = "sorted(skeleton(name_tokens(name|alias))) | birth year"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        if record.birth_date is None:
            return []
        year = f"{record.birth_date.year:04d}"
        return sorted({(" ".join(sorted(map(skeleton, t))), year) for t in _names(record)})


EXACT_PROFILE = Profile("exact/1", (DocumentNumber(), ExactNameBirthDate()))
STANDARD_PROFILE = Profile("standard/2", (DocumentNumber(), NameBirthDate(), NameCodeBirthDate(), SkeletonBirthDate(),
                                          SkeletonDropOneBirthDate(), SkeletonBirthYear()))
PROFILES: dict[str, Profile] = {p.profile_id: p for p in (EXACT_PROFILE, STANDARD_PROFILE)}
