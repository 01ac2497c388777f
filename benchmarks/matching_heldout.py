"""Held-out evaluation of match profiles (issue 14): typo'd records, cross-script classes, same-date people.

Imported by benchmarks/matching_quality.py. Nothing here was used to choose the rules: the seed differs
from the development set and the corruptions are drawn at random. Two name populations:

- `Names`: benchmarks/data/names.json (Faker's per-locale lists, see make_names.py). psi/data/name_words.txt
  is built from the same lists, so spelling correction knows every name drawn: optimistic for recall.
- `IndependentNames`: given names per country from the `gender-guesser` package's dictionary (Jörg
  Michael's nam_dict, frequencies per country) and surnames from the US census 1990 list of the `names`
  package, with their frequencies. psi/data uses neither, so these figures are the honest ones.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections import Counter, defaultdict
from dataclasses import replace
from functools import cache
from itertools import combinations
from pathlib import Path

import gender_guesser.detector
import names as census_names
from anyascii import anyascii

from psi.profiles import Profile, Strength
from psi.records import PartialDate, Record

DATA = Path(__file__).resolve().parent / "data" / "names.json"
VARIANTS = DATA.parent / "romanised_variants.json"
CULTURES = ("ru", "ar", "zh", "ko", "el", "he", "de", "en", "es", "tr", "fr")
NATIONALITY = {"ru": "RUS", "ar": "EGY", "zh": "CHN", "ko": "KOR", "el": "GRC", "he": "ISR", "de": "DEU",
               "en": "USA", "es": "ESP", "tr": "TUR", "fr": "FRA"}
NICKNAMES = {"alexander": "alex", "aleksandr": "sasha", "robert": "bob", "william": "bill", "elizabeth": "liz",
             "katharina": "kathi", "johannes": "hans", "margaret": "maggie", "dmitriy": "dima", "mikhail": "misha",
             "francisco": "paco", "jose": "pepe", "michael": "mike", "christopher": "chris", "jennifer": "jenny"}
_OCR = (("rn", "m"), ("m", "rn"), ("cl", "d"), ("l", "i"), ("o", "c"), ("vv", "w"), ("e", "c"), ("h", "b"))
_KEYS = "qwertyuiop asdfghjkl zxcvbnm"


class Names:
    """Weighted name lists per culture: Faker's weights where it has them, else Zipf over a fixed random order."""

    def __init__(self, seed: int) -> None:
        raw = json.loads(DATA.read_text())
        rng = random.Random(seed)
        self.lists: dict[str, dict[str, tuple[list[str], list[float]]]] = {}
        for culture in CULTURES:
            lists = {}
            for kind, names in raw[culture].items():
                items = list(names.items())
                if len({w for _, w in items}) == 1 or culture != "en":
                    rng.shuffle(items)
                    items = [(n, 1.0 / (r + 1)) for r, (n, _) in enumerate(items)]
                lists[kind] = ([n for n, _ in items], [w for _, w in items])
            self.lists[culture] = lists

    def draw(self, rng: random.Random, culture: str, kind: str, top: int | None = None) -> str:
        names, weights = self.lists[culture][kind]
        if top:
            names, weights = names[:top], weights[:top]
        return rng.choices(names, weights)[0]

    def family(self, rng: random.Random, culture: str, sex: str, top: int | None = None) -> str:
        for _ in range(50):
            name = self.draw(rng, culture, "family", top)
            feminine = name.endswith(("а", "я")) if culture == "ru" else name.endswith(("ου", "α", "η"))
            if culture not in ("ru", "el") or feminine == (sex == "F"):
                return name
        return name


# The gender-guesser country column of each culture (the Arabic column also lists Persian names).
COUNTRY = {"ru": "russia", "ar": "arabia", "zh": "china", "ko": "korea", "el": "greece", "he": "israel",
           "de": "germany", "en": "usa", "es": "spain", "tr": "turkey", "fr": "france"}
_GIVEN_KIND = {"male": ("given_m",), "mostly_male": ("given_m",), "female": ("given_f",),
               "mostly_female": ("given_f",), "andy": ("given_m", "given_f")}  # andy: unisex (most Chinese names)


class IndependentNames(Names):
    """Given names per culture from gender-guesser (weight 2**frequency digit: its scale is logarithmic),
    surnames of every culture from the US census 1990 (weight: percent of the population)."""

    def __init__(self, seed: int) -> None:
        del seed  # the lists keep their frequency order: there is nothing to shuffle
        detector = gender_guesser.detector.Detector()
        column = {c: detector.COUNTRIES.index(country) for c, country in COUNTRY.items()}
        given: dict[str, dict[str, dict[str, float]]] = {c: {"given_m": {}, "given_f": {}} for c in CULTURES}
        for name, genders in detector.names.items():
            if " " in name or "-" in name:
                continue  # the '+' forms of Chinese and Korean names: the joined one is kept
            for gender, values in genders.items():
                for culture, i in column.items():
                    digit = values[i:i + 1].strip()
                    for kind in _GIVEN_KIND.get(gender, ()) if digit else ():
                        weights = given[culture][kind]
                        weights[name] = max(weights.get(name, 0.0), 2.0 ** int(digit, 16))
        path = Path(census_names.__file__).parent / "dist.all.last"
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        family = sorted(((r[0].capitalize(), float(r[1])) for r in rows if float(r[1]) > 0), key=lambda x: -x[1])
        self.lists = {}
        for culture in CULTURES:
            lists = {kind: ([n for n, _ in items], [w for _, w in items])
                     for kind, items in ((k, sorted(v.items(), key=lambda x: (-x[1], x[0])))
                                         for k, v in given[culture].items())}
            lists["family"] = ([n for n, _ in family], [w for _, w in family])
            self.lists[culture] = lists

    def family(self, rng: random.Random, culture: str, sex: str, top: int | None = None) -> str:
        return self.draw(rng, culture, "family", top)


def _person(rng: random.Random, names: Names, culture: str, dob: PartialDate | None = None,
            top: int | None = None) -> tuple[str, str, str, PartialDate]:
    sex = rng.choice("MF")
    given = names.draw(rng, culture, "given_m" if sex == "M" else "given_f", top)
    family = names.family(rng, culture, sex, top)
    dob = dob or PartialDate(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28))
    return given, family, sex, dob


def _latin(text: str) -> str:
    return " ".join(w.capitalize() for w in anyascii(text).replace("'", "").split())


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 2:
        return word
    i = rng.randrange(len(word))
    op = rng.choice(["sub", "del", "ins", "swap"])
    row = next((r for r in _KEYS.split() if word[i].lower() in r), "aeiou")
    near = row[max(0, row.find(word[i].lower()) - 1):row.find(word[i].lower()) + 2] or "e"
    if op == "del" and len(word) > 3:
        return word[:i] + word[i + 1:]
    if op == "ins":
        return word[:i] + rng.choice(near) + word[i:]
    if op == "swap" and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + rng.choice([c for c in near if c != word[i].lower()] or ["e"]) + word[i + 1:]


def _ocr(rng: random.Random, word: str) -> str:
    options = [(a, b) for a, b in _OCR if a in word.lower()]
    if not options:
        return _typo(rng, word)
    a, b = rng.choice(options)
    return word.lower().replace(a, b, 1).capitalize()


CORRUPTIONS = ("typo_given", "typo_family", "ocr", "vowel", "two_typos", "date_digits", "day_month_swap",
               "missing_date", "missing_given", "swapped_fields", "nickname", "case_accents")


def _corrupt(rng: random.Random, kind: str, given: str, family: str, dob: PartialDate
             ) -> tuple[str, str, PartialDate | None]:
    if kind == "typo_given":
        return _typo(rng, given), family, dob
    if kind == "typo_family":
        return given, _typo(rng, family), dob
    if kind == "ocr":
        return (_ocr(rng, given), family, dob) if rng.random() < 0.5 else (given, _ocr(rng, family), dob)
    if kind == "vowel":
        swap = {"e": "i", "i": "e", "o": "u", "u": "o", "a": "e"}
        word = family if rng.random() < 0.5 else given
        spots = [i for i, c in enumerate(word) if c in swap]
        if spots:
            i = rng.choice(spots)
            word2 = word[:i] + swap[word[i]] + word[i + 1:]
            return (given, word2, dob) if word is family else (word2, family, dob)
        return given, family, dob
    if kind == "two_typos":
        return _typo(rng, given), _typo(rng, family), dob
    if kind == "date_digits":
        text = list(f"{dob.year:04d}{dob.month:02d}{dob.day:02d}")
        for _ in range(10):
            i = rng.choice([2, 6])
            t = text[:]
            t[i], t[i + 1] = t[i + 1], t[i]
            try:
                new = PartialDate(int("".join(t[:4])), int("".join(t[4:6])), int("".join(t[6:])))
            except Exception:
                continue
            if new != dob:
                return given, family, new
        return given, family, PartialDate(dob.year, dob.month, dob.day % 28 + 1)
    if kind == "day_month_swap":
        day = dob.day or 1
        return given, family, PartialDate(dob.year, day, dob.month) if day <= 12 else dob
    if kind == "missing_date":
        return given, family, None
    if kind == "missing_given":
        return "", family, dob
    if kind == "swapped_fields":
        return family, given, dob
    if kind == "nickname":
        return NICKNAMES.get(given.lower(), given[:4]).capitalize(), family, dob
    if kind == "case_accents":
        return given.upper(), family.lower(), dob
    raise ValueError(kind)


def typo_pairs(names: Names, pairs: int, seed: int) -> tuple[list[Record], list[Record], dict[str, str]]:
    """A: the Latin record; B: the same person with one corruption (names-only: no documents)."""
    rng = random.Random(seed)
    a_side, b_side, kind_of = [], [], {}
    for n in range(pairs):
        culture = CULTURES[n % len(CULTURES)]
        given, family, sex, dob = _person(rng, names, culture)
        given, family = _latin(given), _latin(family)
        kind = CORRUPTIONS[rng.randrange(len(CORRUPTIONS))]
        g2, f2, d2 = _corrupt(rng, kind, given, family, dob)
        a_side.append(Record(f"a{n}", "", dob, NATIONALITY[culture], reference=f"a{n}", given_name=given,
                             family_name=family, sex=sex))
        order = rng.random() < 0.3  # some lists write the family name first
        b_side.append(Record(f"b{n}", f"{f2} {g2}".strip() if order else f"{g2} {f2}".strip(), d2,
                             NATIONALITY[culture], reference=f"b{n}", sex=sex))
        kind_of[f"b{n}"] = kind
    return a_side, b_side, kind_of


_GR = {"αι": "e", "ει": "i", "οι": "i", "ου": "ou", "μπ": "b", "ντ": "d", "γγ": "ng", "γκ": "g", "α": "a", "β": "v",
       "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th", "ι": "i", "κ": "k", "λ": "l", "μ": "m", "ν": "n",
       "ξ": "x", "ο": "o", "π": "p", "ρ": "r", "σ": "s", "ς": "s", "τ": "t", "υ": "i", "φ": "f", "χ": "ch", "ψ": "ps",
       "ω": "o"}


def _greek_phonetic(text: str) -> str:
    """A phonetic romanisation (gamma before e/i as Y; ei, oi and upsilon as i), as older passports write."""
    plain = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if not unicodedata.combining(c))
    out, i = [], 0
    while i < len(plain):
        if plain[i] == "γ" and i + 1 < len(plain) and plain[i + 1] in "ειηυ" and (i == 0 or plain[i - 1] == " "):
            out.append("y")
            i += 1
            continue
        two = plain[i:i + 2]
        if two in _GR:
            out.append(_GR[two])
            i += 2
        else:
            out.append(_GR.get(plain[i], plain[i]))
            i += 1
    return " ".join(w.capitalize() for w in "".join(out).split())


_ABD_NAMES = ("Rahman", "Aziz", "Karim", "Qadir", "Majid", "Hamid", "Latif", "Nasser", "Rahim", "Wahab", "Halim")
_ABD_FORMS = ("Abd al-{}", "Abdul {}", "Abdel {}", "Abdul{}", "Abd-ul-{}", "Abdel-{}", "Abd el {}", "Abd {}")
_ARTICLE_FAMILY = ("Masri", "Hashimi", "Tikriti", "Baghdadi", "Shami", "Qasimi", "Halabi")
_HEBREW = (("Yosef", "Josef", "Iosif"), ("Yitzhak", "Itzhak", "Jitzhak"), ("Yaakov", "Jaakov", "Iaakov"),
           ("Yehuda", "Jehuda", "Iehuda"), ("Yonatan", "Jonatan", "Ionatan"), ("Yael", "Jael", "Iael"),
           ("Chaim", "Haim", "Khaim"), ("Yisrael", "Israel", "Jisrael"))
_PARTICLE_GIVEN = ("Ben", "Abu", "Bin", "De", "Du", "Le", "Van", "Da", "Al")
_TITLES = ("Dr", "Mr", "Mrs", "Dr.", "Prof")


def cross_script_pairs(names: Names, per_class: int, seed: int) -> tuple[list[Record], list[Record], dict[str, str]]:
    """Pairs of one person written in two scripts or conventions, by class (issue 14)."""
    rng = random.Random(seed)
    a_side, b_side, kind_of = [], [], {}

    def add(kind: str, a_name: str, b_name: str, dob: PartialDate) -> None:
        n = len(a_side)
        a_side.append(Record(f"a{n}", a_name, dob, reference=f"a{n}"))
        b_side.append(Record(f"b{n}", b_name, dob, reference=f"b{n}"))
        kind_of[f"b{n}"] = kind

    for _ in range(per_class):
        dob = PartialDate(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28))
        # Arabic Abd compounds and the article apart or attached
        inner = rng.choice(_ABD_NAMES)
        fam = rng.choice(_ARTICLE_FAMILY)
        f1, f2 = rng.sample(_ABD_FORMS, 2)
        add("arabic_compound", f"{f1.format(inner)} al-{fam}",
            f"{f2.format(inner)} " + rng.choice([f"Al {fam}", f"Al{fam.lower()}", f"el-{fam}", fam]), dob)
        # Chinese: characters against pinyin with the given name in one or two words, either order
        g, f, _, _ = _person(rng, names, "zh", dob)
        if len(g) == 1:
            g += names.draw(rng, "zh", "given_m")[:1]
        py_f, py_g = anyascii(f), [anyascii(c) for c in g]
        add("chinese_syllables", f + g, rng.choice([f"{py_f} {''.join(py_g)}", f"{py_f} {' '.join(py_g)}",
                                                    f"{''.join(py_g)} {py_f.upper()}"]), dob)
        # Korean: Hangul against a romanisation with another family-name spelling and split given name
        g, f, _, _ = _person(rng, names, "ko", dob)
        fam_latin = {"김": ["Kim", "Gim"], "이": ["Lee", "Yi", "Rhee"], "박": ["Park", "Pak", "Bak"],
                     "최": ["Choi", "Choe"], "정": ["Jung", "Jeong", "Chung"]}.get(f, [anyascii(f)])
        given_sy = [anyascii(c) for c in g]
        add("korean", f + g, rng.choice([f"{rng.choice(fam_latin)} {'-'.join(given_sy)}",
                                         f"{rng.choice(fam_latin)} {''.join(given_sy)}",
                                         f"{''.join(given_sy)} {rng.choice(fam_latin)}"]), dob)
        # Hebrew initial consonants
        forms = rng.choice(_HEBREW)
        fam = _latin(names.draw(rng, "he", "family"))
        a, b = rng.sample(forms, 2)
        add("hebrew_initial", f"{a} {fam}", f"{b} {fam}", dob)
        # Greek script against a phonetic romanisation
        g, f, _, _ = _person(rng, names, "el", dob)
        add("greek", f"{g} {f}", _greek_phonetic(f"{g} {f}"), dob)
        # a title on one side only
        g, f, _, _ = _person(rng, names, rng.choice(["en", "de", "fr", "es"]), dob)
        add("title", f"{rng.choice(_TITLES)} {g} {f}", f"{g} {f}", dob)
        # a particle that is a given name, family name first on one side
        fam = _latin(names.draw(rng, rng.choice(["he", "ar", "zh", "en"]), "family")).split()[-1]
        given = rng.choice(_PARTICLE_GIVEN)
        add("particle_given_name", f"{given} {fam}", f"{fam.upper()} {given}", dob)
    return a_side, b_side, kind_of


# Cultures whose lists (in IndependentNames) are romanisations: one native name has several Latin spellings.
ROMANISED = frozenset({"ru", "ar", "zh", "ko", "el", "he"})


@cache
def _variant_groups() -> dict[str, dict[str, str]]:
    """Per ROMANISED culture: given name -> its group of spellings of one name (make_romanised_variants.py)."""
    groups: dict[str, dict[str, str]] = json.loads(VARIANTS.read_text())
    return groups


def same_date_population(names: Names, per_culture: int, seed: int, top: int | None
                         ) -> dict[str, list[Record]]:
    """Distinct people sharing one date of birth per culture (names drawn by frequency).

    Chinese and Korean script writes the family name first, as those scripts do. Where the lists are
    romanisations (IndependentNames, ROMANISED cultures: Natalia/Natalya, Mohamed/Muhammad, Jung/Jeong),
    two spellings of one given name that rigour's name data links (data/romanised_variants.json) are one
    person's name written two ways, not two people: a person is drawn again instead.
    """
    rng = random.Random(seed)
    dob = PartialDate(1985, 3, 7)
    population = {}
    romanised = isinstance(names, IndependentNames)
    for culture in CULTURES:
        seen, people = set(), []
        by_family: dict[str, list[str]] = defaultdict(list)
        # Fewer distinct people than asked for when the frequent names hold fewer (romanised lists).
        for _ in range(50 * per_culture):
            if len(people) == per_culture:
                break
            given, family, sex, _ = _person(rng, names, culture, dob, top)
            written = _latin(f"{given} {family}").casefold()
            if written in seen:
                continue  # homophones (晶/静 Jing) and the same name: one person to any Latin reading
            if romanised and culture in ROMANISED:
                group = _variant_groups()[culture].get(given, given)
                if group in by_family[family]:
                    continue
                by_family[family].append(group)
            seen.add(written)
            script = rng.random() < 0.5
            han_hangul = any("\u2e80" <= ch <= "\ud7af" for ch in given + family)
            name = (family + given if han_hangul else f"{given} {family}") if script else _latin(f"{given} {family}")
            people.append(Record(f"{culture}{len(people)}", name, dob, NATIONALITY[culture], sex=sex,
                                 reference="r"))
        population[culture] = people
    return population


def keyed(profile: Profile, records: list[Record]) -> dict[str, dict[bytes, str]]:
    return {r.record_id: {k.value: k.rule_id for k in profile.match_keys(r)} for r in records}


def join(profile: Profile, a_side: list[Record], b_side: list[Record]) -> dict[tuple[str, str], set[str]]:
    index: dict[bytes, list[str]] = defaultdict(list)
    for record in a_side:
        for key in profile.match_keys(record):
            index[key.value].append(record.record_id)
    hits: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in b_side:
        for key in profile.match_keys(record):
            for a_id in index.get(key.value, ()):
                hits[(a_id, record.record_id)].add(key.rule_id)
    return hits


def _strength(profile: Profile, rules: set[str]) -> Strength:
    return min((profile.rule(r).strength for r in rules), key=[Strength.STRONG, Strength.MEDIUM, Strength.WEAK].index)


def _typo_figures(profile: Profile, names: Names, pairs: int, seed: int) -> dict[str, object]:
    rules = [r.rule_id for r in profile.rules]
    a, b, kind_of = typo_pairs(names, pairs, seed)
    hits = join(profile, a, b)
    per_rule: dict[str, Counter[str]] = {r: Counter() for r in rules}
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    sm_true = sm_false = any_true = any_false = 0
    for (a_id, b_id), matched in hits.items():
        correct = a_id[1:] == b_id[1:]
        for r in matched:
            per_rule[r]["true" if correct else "false"] += 1
        sm = _strength(profile, matched) in CONFIRM
        sm_true += sm and correct
        sm_false += sm and not correct
        any_true += correct
        any_false += not correct
        if correct:
            by_kind[kind_of[b_id]]["any"] += 1
            by_kind[kind_of[b_id]]["sm"] += sm
    totals = Counter(kind_of.values())
    keyable = [k for k in CORRUPTIONS if k not in UNKEYABLE]
    return {
        "pairs": pairs,
        "recall_strong_medium": round(sum(c["sm"] for c in by_kind.values()) / pairs, 3),
        "recall_strong_medium_keyable": round(sum(by_kind[k]["sm"] for k in keyable)
                                              / sum(totals[k] for k in keyable), 3),
        "recall_any": round(any_true / pairs, 3),
        "precision_strong_medium": round(sm_true / max(1, sm_true + sm_false), 4),
        "precision_any": round(any_true / max(1, any_true + any_false), 4),
        "by_corruption": {k: {"strong_medium": round(by_kind[k]["sm"] / totals[k], 3),
                              "any": round(by_kind[k]["any"] / totals[k], 3)} for k in CORRUPTIONS},
        "per_rule": {r: {"recall": round(c["true"] / pairs, 3),
                         "precision": round(c["true"] / max(1, c["true"] + c["false"]), 4)}
                     for r, c in per_rule.items()},
        "keys_per_record": round(sum(len(profile.match_keys(r)) for r in a + b) / (2 * pairs), 2),
    }


def _cross_script_figures(profile: Profile, names: Names, per_class: int, seed: int) -> dict[str, object]:
    a, b, kind_of = cross_script_pairs(names, per_class, seed)
    hits = join(profile, a, b)
    cs: dict[str, Counter[str]] = defaultdict(Counter)
    for (a_id, b_id), matched in hits.items():
        if a_id[1:] == b_id[1:]:
            cs[kind_of[b_id]]["any"] += 1
            cs[kind_of[b_id]]["sm"] += _strength(profile, matched) in CONFIRM
    n = len(b)
    return {
        "pairs": n, "recall_strong_medium": round(sum(c["sm"] for c in cs.values()) / n, 3),
        "recall_any": round(sum(c["any"] for c in cs.values()) / n, 3),
        "by_class": {k: {"strong_medium": round(cs[k]["sm"] / per_class, 3), "any": round(cs[k]["any"] / per_class, 3)}
                     for k in sorted(set(kind_of.values()))},
    }


def _same_date_figures(profile: Profile, names: Names, per_culture: int, seed: int) -> dict[str, object]:
    population: dict[str, object] = {}
    for label, top in (("all_names", None), ("frequent_names", 30)):
        groups = same_date_population(names, per_culture if top is None else per_culture // 3, seed, top)
        comparisons = 0
        false: Counter[str] = Counter()
        examples: list[list[str]] = []
        for people in groups.values():
            comparisons += len(people) * (len(people) - 1) // 2
            index: dict[bytes, list[Record]] = defaultdict(list)
            pair_rules: dict[tuple[str, str], set[str]] = defaultdict(set)
            for person in people:
                for key in profile.match_keys(person):
                    for other in index[key.value]:
                        pair_rules[(other.record_id, person.record_id)].add(key.rule_id)
                    index[key.value].append(person)
            by_id = {p.record_id: p for p in people}
            for (x, y), matched in pair_rules.items():
                for r in matched:
                    false[r] += 1
                s = _strength(profile, matched)
                false[s.value] += 1
                if s in CONFIRM and len(examples) < 40:
                    examples.append([by_id[x].name, by_id[y].name, "+".join(sorted(matched))])
        population[label] = {
            "people": sum(len(p) for p in groups.values()), "comparisons": comparisons,
            "false_pairs": dict(false),
            "false_pairs_per_million": {k: round(v * 1e6 / comparisons, 1) for k, v in false.items()},
            "strong_medium_examples": examples,
        }
    return population


CONFIRM = frozenset({Strength.STRONG, Strength.MEDIUM})
# No medium key can join these without joining different people (docs/matching.md): a name without a
# date of birth, a family name alone.
UNKEYABLE = frozenset({"missing_date", "missing_given"})


def evaluate(profile: Profile, pairs: int = 5000, per_class: int = 40, per_culture: int = 1500,
             seed: int = 2029) -> dict[str, object]:
    """The Faker population (typo'd, cross-script, same-date) and the independent one (typo'd, same-date)."""
    names = Names(seed)
    independent = IndependentNames(seed)
    return {
        "profile": profile.profile_id,
        "typo": _typo_figures(profile, names, pairs, seed),
        "cross_script": _cross_script_figures(profile, names, per_class, seed + 1),
        "same_date_people": _same_date_figures(profile, names, per_culture, seed + 2),
        "independent": {"typo": _typo_figures(profile, independent, pairs, seed + 3),
                        "same_date_people": _same_date_figures(profile, independent, per_culture, seed + 4)},
    }


def with_documents_removed(records: list[Record]) -> list[Record]:
    return [replace(r, documents=()) for r in records]


__all__ = ["combinations", "evaluate"]
