"""Deterministic synthetic wanted-person lists with a known overlap (demo, tests, benchmarks)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from psi.records import IdentityDocument, PartialDate, Record

GIVEN = ("Anna", "Jan", "Maria", "Pierre", "Sofia", "Luca", "Eva", "Tomas", "Ines", "Karim", "Olga",
         "Piotr", "Lea", "Mateo", "Nora", "Omar", "Clara", "Hugo", "Elif", "Milan", "Zofia", "Ivan",
         "Lucia", "Ahmed", "Greta", "Pablo", "Sara", "Emil", "Rosa", "Yusuf")
FAMILY = ("Müller", "Kowalski", "Rossi", "Dubois", "García", "Novak", "Jansen", "Silva", "Horvat",
          "Nielsen", "Popescu", "Schmidt", "Moreau", "Ferreira", "Kovač", "Virtanen", "Papadopoulos",
          "Yilmaz", "Andersson", "Fischer", "Lambert", "Costa", "Bauer", "Wójcik", "Marino", "Petrov",
          "Haddad", "Keller", "Ruiz", "Berg")
COUNTRIES = ("DEU", "FRA", "ITA", "ESP", "POL", "NLD", "PRT", "HRV", "DNK", "ROU", "GRC", "TUR", "SWE")
CATEGORIES = ("arrest", "extradition", "missing-person", "witness")


@dataclass(frozen=True)
class SyntheticPair:
    a: list[Record]
    b: list[Record]
    overlap: frozenset[tuple[str, str]]  # (A record id, B record id) of the same person


def _person(rng: random.Random, used: set[tuple[str, str]]) -> tuple[str, PartialDate, str]:
    while True:
        name = f"{rng.choice(GIVEN)} {rng.choice(GIVEN)} {rng.choice(FAMILY)}"
        dob = PartialDate(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28))
        if (name, dob.isoformat()) not in used:
            used.add((name, dob.isoformat()))
            return name, dob, rng.choice(COUNTRIES)


def _record(rng: random.Random, prefix: str, index: int, person: tuple[str, PartialDate, str],
            passport: str | None) -> Record:
    name, dob, country = person
    docs = (IdentityDocument("PASSPORT", passport, country),) if passport else ()
    return Record(f"{prefix}-{index:07d}", name, dob, country, docs,
                  reference=f"{prefix.upper()}-REF-{index:07d}", category=rng.choice(CATEGORIES))


def make_lists(n_a: int, n_b: int, overlap: int, seed: int = 1, doc_only_share: float = 0.2) -> SyntheticPair:
    """Two lists sharing `overlap` persons; a share of them match only by passport (name spelled apart)."""
    if overlap > min(n_a, n_b):
        raise ValueError("overlap cannot exceed either list")
    rng = random.Random(seed)
    used: set[tuple[str, str]] = set()
    passports = iter(f"P{n:08d}" for n in rng.sample(range(10**8), n_a + n_b))
    a = [_record(rng, "a", i, _person(rng, used), next(passports) if rng.random() < 0.4 else None)
         for i in range(n_a)]
    b = [_record(rng, "b", i, _person(rng, used), next(passports) if rng.random() < 0.4 else None)
         for i in range(n_b)]
    pairs = set()
    for ia, ib in zip(rng.sample(range(n_a), overlap), rng.sample(range(n_b), overlap), strict=True):
        source = a[ia]
        if rng.random() < doc_only_share:
            passport = source.documents[0].number if source.documents else next(passports)
            doc = IdentityDocument("PASSPORT", passport, source.nationality or "DEU")
            a[ia] = replace(source, documents=(doc,))
            b[ib] = replace(b[ib], documents=(doc,))  # same passport, B's own spelling of the name
        else:
            b[ib] = replace(b[ib], name=source.name, birth_date=source.birth_date)
        pairs.add((a[ia].record_id, b[ib].record_id))
    return SyntheticPair(a, b, frozenset(pairs))
