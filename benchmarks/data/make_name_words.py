"""Write psi/data/name_words.txt: the known names of profile `standard/2` (psi.spelling).

    pip install faker==40.63.0 rigour==2.6.1 && python benchmarks/data/make_name_words.py

Every given and family name of every locale of Faker's person provider (MIT licence; public name
statistics per country), read as `psi.normalize` reads names (the Latin readings of Greek script,
the syllable runs of Chinese and Korean names too). One line per word:

    word  locales  reading  code  flags

- locales: how many Faker locales list the word (the tie-break of spelling correction);
- reading: `-` when no other known name shares the word's name code; otherwise the spelling that
  code-dob keys the word by: the first word, in sort order, of its group of spelling variants of one
  name. Two known names are variants of one name when rigour's person-name data (OpenSanctions,
  MIT; Wikidata name items) gives them a common name symbol (Omar/Umar, Hassan/Hasan, Alexei/Alexey),
  or when they differ only in an initial glide (Yosef/Josef). Kathe/Kathy or Janet/Janett share no
  symbol, so each keeps its own spelling and they never meet at medium;
- code: the word's name code when it has a reading (an unknown spelling with that code is read as
  the one variant group that has it, if only one does), else `-`;
- flags: `s` for a romanised Chinese or Korean syllable (a single character's reading), else `-`.

Faker's words are never corrected by psi.spelling (they are the list), so the file is built with an
empty list in place.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import faker.providers.person as person_providers  # noqa: E402
from rigour.names import NameTypeTag, analyze_names  # noqa: E402

import psi.spelling  # noqa: E402

psi.spelling._raw = lambda: b""  # list while no known-name rule applies
from psi.normalize import _GLIDE, cjk_script, fold, name_code, name_tokens, token_lists  # noqa: E402

ATTRIBUTES = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary", "last_names",
              "last_names_male", "last_names_female")


def _faker_names() -> dict[str, set[str]]:
    """Each normalised word -> the locales that list it; and the CJK syllables."""
    words: dict[str, set[str]] = defaultdict(set)
    for module in pkgutil.iter_modules(person_providers.__path__):
        provider = importlib.import_module(f"faker.providers.person.{module.name}").Provider
        for attribute in ATTRIBUTES:
            values = getattr(provider, attribute, None)
            if not values or isinstance(values, property):
                continue
            for value in (values.keys() if isinstance(values, dict) else values):
                name = str(value)
                tokens = [t for reading in token_lists(name) for t in reading] + name_tokens(name)
                if cjk_script(name):
                    tokens.append(re.sub(r"[^a-z0-9]", "", fold(name).lower()))
                for token in tokens:
                    words[token].add(module.name)
    return words


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


def _symbols(word: str) -> set[str]:
    names = analyze_names(NameTypeTag.PER, [word])
    return {span.symbol.id for name in names for span in name.spans if span.symbol.category.value == "NAME"}


def _find(parent: dict[str, str], word: str) -> str:
    while parent[word] != word:
        parent[word] = parent[parent[word]]
        word = parent[word]
    return word


def _readings(words: list[str]) -> dict[str, str]:
    """Words whose code another known name shares -> the first spelling of their variant group."""
    by_code: dict[str, list[str]] = defaultdict(list)
    for word in words:
        by_code[name_code(word)].append(word)
    out: dict[str, str] = {}
    for group in by_code.values():
        if len(group) < 2:
            continue
        parent = {w: w for w in group}
        keys: dict[str, str] = {}
        for word in group:
            for key in {*_symbols(word), "glide:" + (_GLIDE.sub("", word) if len(word) > 4 else word)}:
                if key in keys:
                    parent[_find(parent, word)] = _find(parent, keys[key])
                else:
                    keys[key] = word
        clusters: dict[str, list[str]] = defaultdict(list)
        for word in group:
            clusters[_find(parent, word)].append(word)
        if len(clusters) > 1:
            for members in clusters.values():
                for word in members:
                    out[word] = min(members)
    return out


def main() -> None:
    words = _faker_names()
    syllables = _syllables()
    readings = _readings(sorted(words))
    path = ROOT / "psi" / "data" / "name_words.txt"
    with path.open("w") as out:
        for word in sorted(set(words) | syllables):
            reading = readings.get(word)
            code = name_code(word) if reading else "-"
            flags = "s" if word in syllables else "-"
            out.write(f"{word} {len(words.get(word, ()))} {reading or '-'} {code} {flags}\n")
    print(f"{path}: {len(words)} names, {len(syllables)} syllables, {len(readings)} with a shared code")


if __name__ == "__main__":
    main()
