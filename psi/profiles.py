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

from psi.normalize import name_tokens, skeleton
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
    d = record.birth_date
    return d.isoformat() if d is not None and d.day is not None else None


@dataclass(frozen=True)
class TokensBirthDate:
    """Name (and each alias) transliterated and folded, words sorted + full date of birth."""

    rule_id: str = "tokens-dob"
    strength: Strength = Strength.MEDIUM
    definition: str = "sorted(name_tokens(name|alias)) | full birth_date"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        date = _full_date(record)
        return [(" ".join(sorted(t)), date) for t in _names(record)] if date else []


@dataclass(frozen=True)
class SkeletonBirthDate:
    """Consonant skeletons of the words, sorted + full date of birth: transliteration and vowel spellings."""

    rule_id: str = "skeleton-dob"
    strength: Strength = Strength.MEDIUM
    definition: str = "sorted(skeleton(name_tokens(name|alias))) | full birth_date"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        date = _full_date(record)
        return [(" ".join(sorted(map(skeleton, t))), date) for t in _names(record)] if date else []


@dataclass(frozen=True)
class SkeletonDropOneBirthDate:
    """All skeletons, and the skeletons with one word left out + full date of birth.

    One side's full set meets the other's set without its extra word, so a missing or extra
    name part matches; two sets without the same misspelt word match a one-typo variant.
    """

    rule_id: str = "skeleton-drop-one-dob"
    strength: Strength = Strength.WEAK
    definition: str = "sorted(skeletons), and for each i sorted(skeletons without word i) | full birth_date"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        date = _full_date(record)
        if not date:
            return []
        parts = set()
        for tokens in _names(record):
            skeletons = [skeleton(t) for t in tokens]
            parts.add((" ".join(sorted(skeletons)), date))
            for i in range(len(skeletons) if len(skeletons) > 1 else 0):
                parts.add((" ".join(sorted(skeletons[:i] + skeletons[i + 1:])), date))
        return sorted(parts)


@dataclass(frozen=True)
class SkeletonBirthYear:
    """Skeletons sorted + year of birth: partial, reformatted or day/month-swapped dates."""

    rule_id: str = "skeleton-year"
    strength: Strength = Strength.WEAK
    definition: str = "sorted(skeleton(name_tokens(name|alias))) | birth year"

    def key_parts(self, record: Record) -> list[tuple[str, ...]]:
        if record.birth_date is None:
            return []
        year = f"{record.birth_date.year:04d}"
        return [(" ".join(sorted(map(skeleton, t))), year) for t in _names(record)]


EXACT_PROFILE = Profile("exact/1", (DocumentNumber(), ExactNameBirthDate()))
STANDARD_PROFILE = Profile("standard/1", (DocumentNumber(), TokensBirthDate(), SkeletonBirthDate(),
                                          SkeletonDropOneBirthDate(), SkeletonBirthYear()))
PROFILES: dict[str, Profile] = {p.profile_id: p for p in (EXACT_PROFILE, STANDARD_PROFILE)}
