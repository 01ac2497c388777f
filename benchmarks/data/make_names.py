"""Write benchmarks/data/names.json: given names (by sex) and family names per culture.

    pip install faker && python benchmarks/data/make_names.py

The lists come from the Faker package (MIT licence), which gathers them per locale from
public name statistics; where Faker keeps frequencies (en_US) they are kept, elsewhere the
benchmark weights a list by rank (Zipf), as real name frequencies fall.
"""

from __future__ import annotations

import json
from pathlib import Path

from faker import Faker

LOCALES = {"ru": "ru_RU", "ar": "ar_AA", "zh": "zh_CN", "ko": "ko_KR", "el": "el_GR", "he": "he_IL",
           "de": "de_DE", "en": "en_US", "es": "es_ES", "tr": "tr_TR", "pl": "pl_PL", "fr": "fr_FR"}


def _names(values: object) -> dict[str, float]:
    if isinstance(values, dict):
        return {str(k): float(v) for k, v in values.items()}
    unique = list(dict.fromkeys(str(v) for v in values))  # type: ignore[attr-defined]
    return {name: 1.0 / (rank + 1) for rank, name in enumerate(unique)}


def main() -> None:
    out = {}
    for culture, locale in LOCALES.items():
        provider = Faker(locale).factories[0].provider("faker.providers.person")
        male = getattr(provider, "first_names_male", None) or provider.first_names
        female = getattr(provider, "first_names_female", None) or provider.first_names
        last = getattr(provider, "last_names", None)
        out[culture] = {"given_m": _names(male), "given_f": _names(female), "family": _names(last)}
    path = Path(__file__).with_name("names.json")
    path.write_text(json.dumps(out, ensure_ascii=False, indent=0, sort_keys=True) + "\n")
    print({c: {k: len(v) for k, v in d.items()} for c, d in out.items()})


if __name__ == "__main__":
    main()
