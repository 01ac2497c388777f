"""Write psi/data/name_words.txt: the known names of profile `standard/5` (psi.spelling).

    pip install faker==40.63.0 rigour==2.6.1 && python benchmarks/data/make_name_words.py   # needs the zstd tool

Every given and family name of every locale of Faker's person provider (MIT licence; public name
statistics per country), read as `psi.normalize` reads names (the Latin readings of Greek script,
the syllable runs of Chinese and Korean names too); and, as rarer names, every Latin-script form of
one word of rigour's person-name data (OpenSanctions, MIT: Wikidata's given and family name items,
the `person_names.txt` that rigour 2.6.1 ships compressed inside its native module) that Faker's lists
lack. One line per word:

    word  locales  reading  code  flags

- locales: how many Faker locales list the word (the tie-break of spelling correction); 0 for a
  name only rigour's data has;
- reading: `-` when no other known name shares the word's name code; otherwise the spelling that
  code-dob keys the word by: the first word, in sort order, of its group of spelling variants of one
  name. Two known names are variants of one name when rigour's person-name data (OpenSanctions,
  MIT; Wikidata name items) gives them a common name symbol (Omar/Umar, Hassan/Hasan, Alexei/Alexey),
  or when they differ only in an initial glide (Yosef/Josef). Kathe/Kathy or Janet/Janett share no
  symbol, so each keeps its own spelling and they never meet at medium;
- code: the word's name code when it has a reading (an unknown spelling with that code is read as
  the one variant group that has it, if only one does), else `-`;
- flags: `s` for a romanised Chinese or Korean syllable (a single character's reading); `w` for a
  name only rigour's data has (no role; its name symbols are the items it is a form of); the word's
  role, which proves a swap of given and family name (psi.profiles): `g` when at least ROLE_RATIO
  times as many locales list it as a given name as list it as a family name (John 24:3), `f` the
  other way round (Smith 2:9, and the Korean family names of psi.normalize.KOREAN_FAMILY), neither
  when it is common in both roles (Ali 12:11, Thomas 28:11); `-` for no flag.

Two spellings that are each a widespread native Latin-script name (listed, written in Latin script, by
at least WIDESPREAD locales: Anna/Ana, Kathe/Kathy) are distinct names and are not joined through a
rigour symbol; transliterations of one name (Mohammed/Muhammad, Omar/Umar, Natalia/Natalya) are.

Faker's words are never corrected by psi.spelling (they are the list), so the file is built with an
empty list in place.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import faker.providers.person as person_providers  # noqa: E402
import rigour._core  # noqa: E402
from rigour.names import NameTypeTag, analyze_names  # noqa: E402

import psi.spelling  # noqa: E402

psi.spelling._raw = lambda: b""  # list while no known-name rule applies
from psi.normalize import (  # noqa: E402
    _GLIDE,
    KOREAN_FAMILY,
    cjk_script,
    fold,
    name_code,
    name_tokens,
    token_lists,
)

ATTRIBUTES = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary", "last_names",
              "last_names_male", "last_names_female")


WIDESPREAD = 17  # a fifth of Faker's 86 locales
ROLE_RATIO = 3
MIN_RARE = 3  # shorter words are never corrected (psi.spelling)
# rigour 2.6.1's person_names.txt ("form, form, ... => Q123" per Wikidata name item), as decompressed.
PERSON_NAMES_SHA256 = "9d6381d55159f471082ecb88446f3f8cffe82eca4ee65ea3a84889dbe75b9e94"
_ZSTD_FRAME = b"\x28\xb5\x2f\xfd"


class FakerNames:
    """Each normalised word -> the locales that list it, those that list it in Latin script, its roles."""

    def __init__(self) -> None:
        self.locales: dict[str, set[str]] = defaultdict(set)
        self.latin: dict[str, set[str]] = defaultdict(set)
        self.roles: dict[str, dict[str, set[str]]] = {"g": defaultdict(set), "f": defaultdict(set)}
        for module in pkgutil.iter_modules(person_providers.__path__):
            provider = importlib.import_module(f"faker.providers.person.{module.name}").Provider
            for attribute in ATTRIBUTES:
                values = getattr(provider, attribute, None)
                if not values or isinstance(values, property):
                    continue
                for value in (values.keys() if isinstance(values, dict) else values):
                    self._add(str(value), module.name, "g" if attribute.startswith("first") else "f")

    def _add(self, name: str, locale: str, role: str) -> None:
        tokens = [t for reading in token_lists(name) for t in reading] + name_tokens(name)
        if cjk_script(name):
            tokens.append(re.sub(r"[^a-z0-9]", "", fold(name).lower()))
        latin = all(ord(ch) < 0x250 for ch in name)
        for token in tokens:
            self.locales[token].add(locale)
            self.roles[role][token].add(locale)
            if latin:
                self.latin[token].add(locale)

    def role(self, word: str) -> str:
        if word in KOREAN_FAMILY.values():
            return "f"
        given, family = (len(self.roles[r].get(word, ())) for r in "gf")
        return "g" if given >= ROLE_RATIO * max(family, 1 / ROLE_RATIO) else (
            "f" if family >= ROLE_RATIO * max(given, 1 / ROLE_RATIO) else "")

    def widespread(self, word: str) -> bool:
        return len(self.latin.get(word, ())) >= WIDESPREAD


def _syllables() -> set[str]:
    out = set()
    for module in ("zh_CN", "zh_TW", "ko_KR"):
        provider = importlib.import_module(f"faker.providers.person.{module}").Provider
        for attribute in ATTRIBUTES:
            values = getattr(provider, attribute, None)
            if values and not isinstance(values, property):
                for value in (values.keys() if isinstance(values, dict) else values):
                    readings = (re.sub(r"[^a-z]", "", fold(ch).lower()) for ch in str(value) if cjk_script(ch))
                    out.update(r for r in readings if r)
    return out


def _person_names() -> str:
    """rigour's person-name table: the one zstd frame of its native module that decompresses to it."""
    module = Path(rigour._core.__file__).read_bytes()
    start = module.find(_ZSTD_FRAME)
    while start != -1:
        # check=False: zstd complains of the bytes after the frame, which it has decompressed by then
        run = subprocess.run(["zstd", "-d", "-c", "-q"], check=False, input=module[start:], capture_output=True)
        if hashlib.sha256(run.stdout).hexdigest() == PERSON_NAMES_SHA256:
            return run.stdout.decode()
        start = module.find(_ZSTD_FRAME, start + 1)
    raise SystemExit("rigour 2.6.1's person_names.txt not found: install rigour==2.6.1")


def _latin(text: str) -> bool:
    return all(ord(ch) < 0x250 or 0x1E00 <= ord(ch) < 0x1F00 for ch in text)


def rigour_words() -> dict[str, set[str]]:
    """Every one-word Latin-script form of a person-name item of rigour's data, read as psi.normalize does
    -> the items it is a form of (its name symbols)."""
    out: dict[str, set[str]] = defaultdict(set)
    for line in _person_names().splitlines():
        forms, item = line.split(" => ")
        for form in forms.split(", "):
            lists = token_lists(form) if _latin(form) else []
            if len(lists) == 1 and len(lists[0]) == 1 and len(lists[0][0]) >= MIN_RARE and lists[0][0].isalpha():
                out[lists[0][0]].add(item)
    return out


def _symbols(word: str) -> set[str]:
    names = analyze_names(NameTypeTag.PER, [word])
    return {span.symbol.id for name in names for span in name.spans if span.symbol.category.value == "NAME"}


def _find(parent: dict[str, str], word: str) -> str:
    while parent[word] != word:
        parent[word] = parent[parent[word]]
        word = parent[word]
    return word


def _readings(names: FakerNames, rare: dict[str, set[str]]) -> dict[str, str]:
    """Words whose code another known name shares -> the first spelling of their variant group."""
    by_code: dict[str, list[str]] = defaultdict(list)
    for word in sorted(set(names.locales) | set(rare)):
        by_code[name_code(word)].append(word)
    out: dict[str, str] = {}
    for group in by_code.values():
        if len(group) < 2:
            continue
        parent = {w: w for w in group}
        keys: dict[str, str] = {}
        for word in group:
            symbols = rare[word] if word in rare else _symbols(word)
            for key in {*symbols, "glide:" + (_GLIDE.sub("", word) if len(word) > 4 else word)}:
                if key not in keys:
                    keys[key] = word
                elif not (names.widespread(word) and names.widespread(keys[key])):
                    parent[_find(parent, word)] = _find(parent, keys[key])
        clusters: dict[str, list[str]] = defaultdict(list)
        for word in group:
            clusters[_find(parent, word)].append(word)
        if len(clusters) > 1:
            for members in clusters.values():
                for word in members:
                    out[word] = min(members)
    return out


def main() -> None:
    names = FakerNames()
    syllables = _syllables()
    rare = {w: items for w, items in rigour_words().items() if w not in names.locales and w not in syllables}
    readings = _readings(names, rare)
    path = ROOT / "psi" / "data" / "name_words.txt"
    with path.open("w") as out:
        for word in sorted(set(names.locales) | syllables | set(rare)):
            reading = readings.get(word)
            code = name_code(word) if reading else "-"
            flags = ("s" if word in syllables else "") + names.role(word) + ("w" if word in rare else "")
            out.write(f"{word} {len(names.locales.get(word, ()))} {reading or '-'} {code} {flags or '-'}\n")
    print(f"{path}: {len(names.locales)} names, {len(syllables)} syllables, {len(readings)} with a shared code, "
          f"{len(rare)} names only rigour's data has")


if __name__ == "__main__":
    main()
