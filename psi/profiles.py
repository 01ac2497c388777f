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
        name = normalize_text(record.name)
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


EXACT_PROFILE = Profile("exact/1", (DocumentNumber(), ExactNameBirthDate()))
PROFILES: dict[str, Profile] = {EXACT_PROFILE.profile_id: EXACT_PROFILE}
