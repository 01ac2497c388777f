"""Person records as both agencies hold them (pure data, validated on construction)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import iso3166

from psi.errors import RecordError

_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
# Other notations agencies use, read as (year, month, day): day first with '.', '/' or '-'
# (European order), year first with '/' or '.', and the compact YYYYMMDD.
_OTHER_DATES = (
    (re.compile(r"^(\d{1,2})[./-](\d{1,2})[./-](\d{4})$"), (3, 2, 1)),
    (re.compile(r"^(\d{4})[./](\d{1,2})[./](\d{1,2})$"), (1, 2, 3)),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), (1, 2, 3)),
    (re.compile(r"^(\d{1,2})[./](\d{4})$"), (2, 1, 0)),
)
_COUNTRY_RE = re.compile(r"^[A-Z]{3}$")
MAX_FIELD_CHARS = 512


@dataclass(frozen=True, order=True, slots=True)
class PartialDate:
    """A date of birth known to the year, the month or the day."""

    year: int
    month: int | None = None
    day: int | None = None

    def __post_init__(self) -> None:
        if not 1000 <= self.year <= 9999:
            raise RecordError(f"year {self.year} is out of range")
        if self.day is not None and self.month is None:
            raise RecordError("a day needs a month")
        if self.month is not None and not 1 <= self.month <= 12:
            raise RecordError(f"month {self.month} is out of range")
        if self.day is not None and not 1 <= self.day <= _days_in_month(self.year, self.month or 1):
            raise RecordError(f"day {self.day} does not exist in {self.year}-{self.month:02d}")

    @classmethod
    def parse(cls, text: str) -> PartialDate:
        """Parse YYYY, YYYY-MM, YYYY-MM-DD, or DD.MM.YYYY, DD/MM/YYYY, YYYY/MM/DD, YYYYMMDD, MM/YYYY."""
        text = text.strip()
        match = _DATE_RE.match(text)
        if match:
            year, month, day = match.groups()
            return cls(int(year), int(month) if month else None, int(day) if day else None)
        for pattern, (y, m, d) in _OTHER_DATES:
            found = pattern.match(text)
            if found:
                return cls(int(found.group(y)), int(found.group(m)), int(found.group(d)) if d else None)
        raise RecordError(f"'{text}' is not a date; use YYYY, YYYY-MM or YYYY-MM-DD (or DD.MM.YYYY)")

    def isoformat(self) -> str:
        if self.month is not None and self.day is not None:
            return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
        parts = [f"{self.year:04d}"]
        if self.month is not None:
            parts.append(f"{self.month:02d}")
        if self.day is not None:
            parts.append(f"{self.day:02d}")
        return "-".join(parts)


def _short_names() -> dict[str, str]:
    """Country names as people write them -> alpha-3: the ISO name, and the part before ',' or '('."""
    names: dict[str, set[str]] = {}
    for country in iso3166.countries:
        for name in (country.name, country.apolitical_name):
            for form in {name, name.split(",")[0], name.split(" (")[0]}:
                names.setdefault(_name_key(form), set()).add(country.alpha3)
    return {name: next(iter(codes)) for name, codes in names.items() if len(codes) == 1}


def _name_key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z ]", " ", text.casefold().replace("&", " and ")).split())


# Common names the ISO list does not spell out, and the ICAO code D (Germany) read in passports.
_COUNTRY_ALIASES = {
    "uk": "GBR", "united kingdom": "GBR", "great britain": "GBR", "england": "GBR", "scotland": "GBR",
    "wales": "GBR", "russia": "RUS", "south korea": "KOR", "republic of korea": "KOR", "north korea": "PRK",
    "vietnam": "VNM", "turkey": "TUR", "czech republic": "CZE", "ivory coast": "CIV", "laos": "LAO",
    "palestine": "PSE", "syria": "SYR", "iran": "IRN", "moldova": "MDA", "tanzania": "TZA", "bolivia": "BOL",
    "venezuela": "VEN", "macedonia": "MKD", "usa": "USA", "us": "USA", "united states": "USA", "taiwan": "TWN",
    "d": "DEU", "kosovo": "XKX",
}


def country_code(text: str, field_name: str = "nationality") -> str:
    """ISO 3166 alpha-3 for an alpha-3 or alpha-2 code or a common English name of the country.

    Any three letters are kept as they are (ICAO adds codes such as XXA, stateless, to ISO's).
    """
    raw = text.strip()
    if _COUNTRY_RE.match(raw.upper()):
        return raw.upper()
    if len(raw) == 2 and raw.isalpha():
        try:
            return str(iso3166.countries_by_alpha2[raw.upper()].alpha3)
        except KeyError:
            pass
    key = _name_key(raw)
    code = _COUNTRY_ALIASES.get(key) or _COUNTRY_NAMES.get(key)
    if code is None:
        raise RecordError(f"'{text}' is not a country: use an ISO 3166 alpha-3 or alpha-2 code (DEU, DE) "
                          "or the country's English name", field=field_name)
    return code


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


@dataclass(frozen=True, slots=True)
class IdentityDocument:
    """An identity document: type (e.g. PASSPORT), number, issuing country (ISO 3166 alpha-3)."""

    doc_type: str
    number: str
    country: str

    def __post_init__(self) -> None:
        if not self.doc_type.strip() or not self.number.strip():
            raise RecordError("a document needs a type and a number", field="documents")
        if not _COUNTRY_RE.match(self.country):
            raise RecordError(
                f"issuing country '{self.country}' must be an ISO 3166 alpha-3 code such as DEU",
                field="documents",
            )


@dataclass(frozen=True, slots=True)  # slots: a bulk client holds a million; ~45% less memory
class Record:
    """One wanted-person record. `reference` and `category` are the follow-up label."""

    record_id: str
    name: str
    birth_date: PartialDate | None = None
    nationality: str | None = None
    documents: tuple[IdentityDocument, ...] = field(default_factory=tuple)
    reference: str = ""
    category: str = ""
    aliases: tuple[str, ...] = ()  # other names the person is known by, in any script
    given_name: str = ""  # when the source keeps name parts apart; `name` is then optional
    family_name: str = ""
    sex: str = ""  # M, F, X or empty
    place_of_birth: str = ""

    @property
    def names(self) -> list[str]:
        """Every name of the person: the full name, given + family name, and the aliases."""
        if not (self.given_name or self.family_name or self.aliases):  # most lists: one name field
            return [self.name] if self.name.strip() else []
        parts = f"{self.given_name} {self.family_name}".strip()
        return [n for n in dict.fromkeys((self.name, parts, *self.aliases)) if n.strip()]

    def __post_init__(self) -> None:
        if not self.record_id.strip():
            raise RecordError("is empty", field="id")
        for name, value in (("id", self.record_id), ("name", self.name), ("given_name", self.given_name),
                            ("family_name", self.family_name), ("place_of_birth", self.place_of_birth),
                            ("reference", self.reference), ("category", self.category)):
            if len(value) > MAX_FIELD_CHARS:
                raise RecordError(f"is longer than {MAX_FIELD_CHARS} characters", field=name)
        if any(len(a) > MAX_FIELD_CHARS for a in self.aliases):
            raise RecordError(f"an alias is longer than {MAX_FIELD_CHARS} characters", field="aliases")
        if not self.names and not self.documents:
            raise RecordError("a record needs a name or an identity document", field="name")
        if self.sex not in ("", "M", "F", "X"):
            raise RecordError(f"'{self.sex}' must be M, F or X (or empty)", field="sex")
        if self.nationality is not None and not _COUNTRY_RE.match(self.nationality):
            raise RecordError(
                f"'{self.nationality}' must be an ISO 3166 alpha-3 code such as FRA",
                field="nationality",
            )


_COUNTRY_NAMES = _short_names()
