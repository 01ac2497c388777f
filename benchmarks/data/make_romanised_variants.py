"""Write benchmarks/data/romanised_variants.json: spellings of one given name in the independent population.

    pip install rigour==2.6.1 && python benchmarks/data/make_romanised_variants.py

gender-guesser lists several romanisations of one native name as separate names (Natalia/Natalya/Natalja,
Mohamed/Muhammad, Jung/Jeong/Chung). For the cultures whose lists are romanisations
(matching_heldout.ROMANISED), this joins the given names that share a person-name symbol in rigour's
Wikidata-derived name data and writes, per culture, each such name -> the first spelling of its group.
The held-out evaluation draws distinct people by it, so that one name written two ways is not counted
as two people. rigour (with ICU) is needed only here, not to run the benchmark.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from matching_heldout import ROMANISED, IndependentNames  # noqa: E402
from rigour.names import NameTypeTag, analyze_names  # noqa: E402


def _symbols(word: str) -> set[str]:
    found = analyze_names(NameTypeTag.PER, [word])
    return {s.symbol.id for n in found for s in n.spans if s.symbol.category.value == "NAME"}


def _groups(words: list[str]) -> dict[str, str]:
    parent = {w: w for w in words}

    def find(word: str) -> str:
        while parent[word] != word:
            parent[word] = parent[parent[word]]
            word = parent[word]
        return word

    first: dict[str, str] = {}
    for word in words:
        for symbol in _symbols(word):
            if symbol in first:
                parent[find(word)] = find(first[symbol])
            else:
                first[symbol] = word
    members: dict[str, list[str]] = {}
    for word in words:
        members.setdefault(find(word), []).append(word)
    return {w: min(group) for group in members.values() if len(group) > 1 for w in group}


def main() -> None:
    names = IndependentNames(0)
    out = {culture: _groups(sorted({n for kind in ("given_m", "given_f") for n in names.lists[culture][kind][0]}))
           for culture in sorted(ROMANISED)}
    path = HERE / "romanised_variants.json"
    path.write_text(json.dumps(out, indent=0, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"{path}: {sum(map(len, out.values()))} names in groups")


if __name__ == "__main__":
    main()
