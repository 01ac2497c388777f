"""Matching quality of a profile: precision and recall per variation kind and per rule.

    python benchmarks/matching_quality.py [--pairs 6000] [--seed 7]

Generates labelled pairs of records of the same person written differently
(scripts, transliteration schemes, order, missing or extra parts, initials,
diacritics, typos, date formats, partial dates, aliases), plus hard negatives,
then matches every A record against every B record on equal match keys, as
the private protocol does (tests prove it returns exactly the equal keys).
Writes benchmarks/results/matching_quality.md and .json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import matplotlib
import matplotlib.pyplot as plt
from matching_heldout import evaluate as heldout
from matching_heldout import join

from psi.profiles import EXACT_PROFILE, STANDARD_PROFILE, Profile, Strength
from psi.records import PartialDate, Record

RESULTS = Path(__file__).resolve().parent / "results"

# Cyrillic in three real-world romanisation habits (English, French, German).
_RU = {"а": "a a a", "б": "b b b", "в": "v v w", "г": "g g g", "д": "d d d", "е": "e e e", "ё": "yo io jo",
       "ж": "zh j sh", "з": "z z s", "и": "i i i", "й": "y i j", "к": "k k k", "л": "l l l", "м": "m m m",
       "н": "n n n", "о": "o o o", "п": "p p p", "р": "r r r", "с": "s s s", "т": "t t t", "у": "u ou u",
       "ф": "f f f", "х": "kh kh ch", "ц": "ts ts z", "ч": "ch tch tsch", "ш": "sh ch sch",
       "щ": "shch chtch schtsch", "ъ": "- - -", "ы": "y y y", "ь": "- - -", "э": "e e e", "ю": "yu iou ju",
       "я": "ya ia ja"}
RU_GIVEN = ["Борис", "Иван", "Сергей", "Дмитрий", "Алексей", "Михаил", "Николай", "Андрей", "Ольга", "Татьяна",
            "Наталья", "Екатерина", "Владимир", "Юрий", "Григорий", "Павел"]
RU_FAMILY = ["Ельцин", "Иванов", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Козлов", "Новиков",
             "Морозов", "Петров", "Волков", "Жуков", "Зайцев", "Чернов", "Юдин", "Яковлев", "Фёдоров", "Орлов"]
# Arabic names with the Latin spellings agencies actually use.
AR = {"محمد": ["Mohammed", "Muhammad", "Mohamed", "Mohammad"], "أحمد": ["Ahmed", "Ahmad"],
      "حسين": ["Hussein", "Husain", "Hussain"], "عمر": ["Omar", "Umar"], "علي": ["Ali"],
      "حسن": ["Hassan", "Hasan"], "يوسف": ["Youssef", "Yusuf", "Yousef"], "خالد": ["Khaled", "Khalid"],
      "إبراهيم": ["Ibrahim", "Ebrahim"], "مصطفى": ["Mustafa", "Moustafa", "Mostafa"], "سعيد": ["Said", "Saeed"],
      "كريم": ["Karim", "Kareem"], "منصور": ["Mansour", "Mansur"], "سليمان": ["Suleiman", "Sulaiman"],
      "ناصر": ["Nasser", "Naser"], "طارق": ["Tarek", "Tariq"]}
# Chinese: characters and their pinyin.
ZH = {"王": "Wang", "李": "Li", "张": "Zhang", "刘": "Liu", "陈": "Chen", "杨": "Yang", "黄": "Huang", "赵": "Zhao",
      "周": "Zhou", "吴": "Wu"}
ZH_GIVEN = {"伟": "Wei", "娜": "Na", "静": "Jing", "洋": "Yang", "强": "Qiang", "磊": "Lei", "军": "Jun",
            "勇": "Yong", "艳": "Yan", "杰": "Jie", "涛": "Tao", "明": "Ming"}
# Greek: script and two romanisations.
GR = {"Γιώργος": ["Giorgos", "Georgios"], "Νίκος": ["Nikos", "Nikolaos"], "Δημήτρης": ["Dimitris", "Dimitrios"],
      "Κώστας": ["Kostas", "Konstantinos"], "Παπαδόπουλος": ["Papadopoulos"], "Παπαδάκης": ["Papadakis"],
      "Οικονόμου": ["Oikonomou", "Ikonomou"], "Γεωργίου": ["Georgiou", "Yeoryiou"]}
# Latin names with diacritics and their plain and expanded spellings.
EU_GIVEN = ["José", "François", "Łukasz", "Søren", "Zoë", "Jürgen", "Ana", "Piotr", "Inês", "Mateo", "Anna",
            "Sofia", "Jan", "Eva", "Luca", "Clara"]
EU_FAMILY = ["Müller", "Gómez", "Kowalczyk", "Ødegaard", "Dvořák", "Schröder", "Fernández", "Nováková",
             "Öztürk", "Lefèvre", "Šimić", "Brandão", "Jansen", "Rossi", "Weber", "García"]
_EXPAND = {"ü": "ue", "ö": "oe", "ä": "ae", "ø": "oe", "å": "aa", "ß": "ss"}
# Given names and a familiar or foreign form of each (the nickname variation).
NICKNAMES = {"Piotr": "Peter", "José": "Pepe", "Jan": "Johannes", "Anna": "Annie", "Mateo": "Matthew",
             "Łukasz": "Luke", "François": "Frank", "Luca": "Luke", "Sofia": "Sophie", "Clara": "Claire"}

KINDS = ("transliteration", "order", "missing_part", "extra_part", "initials", "nickname", "diacritics",
         "typo_1", "typo_2", "dob_format", "day_month_swap", "partial_date", "alias")
NEGATIVE_KINDS = ("same_name_other_dob", "near_name_other_dob")


def _ru_latin(text: str, scheme: int) -> str:
    out = []
    for ch in text:
        low = ch.lower()
        latin = _RU[low].split()[scheme].replace("-", "") if low in _RU else ch
        if low == "е" and (not out or out[-1] == " ") and scheme == 0:
            latin = "ye"  # English habit: initial Е -> Ye
        out.append(latin.capitalize() if ch.isupper() else latin)
    return "".join(out)


@dataclass
class Person:
    script_name: str  # the name as written in its own script (or Latin with diacritics)
    latin_names: list[str]  # other ways to write it
    tokens_latin: list[str]
    dob: PartialDate
    nationality: str


def _person(rng: random.Random) -> Person:
    culture = rng.choice(["ru", "ar", "zh", "gr", "eu"])
    dob = PartialDate(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28))
    if culture == "ru":
        given, family = rng.choice(RU_GIVEN), rng.choice(RU_FAMILY)
        native = f"{given} {family}"
        latin = [_ru_latin(native, s) for s in range(3)]
        return Person(native, latin, latin[0].split(), dob, "RUS")
    if culture == "ar":
        a, b, c = rng.sample(list(AR), 3)
        native = f"{a} {b} {c}"
        latin = [" ".join(rng.choice(AR[w]) for w in (a, b, c)) for _ in range(3)]
        return Person(native, latin, latin[0].split(), dob, rng.choice(["EGY", "SYR", "IRQ", "JOR"]))
    if culture == "zh":
        fam, giv = rng.choice(list(ZH)), rng.choice(list(ZH_GIVEN))
        native = fam + giv
        latin = [f"{ZH[fam]} {ZH_GIVEN[giv]}", f"{ZH_GIVEN[giv]} {ZH[fam]}", f"{ZH[fam]}{ZH_GIVEN[giv]}"]
        return Person(native, latin, latin[0].split(), dob, "CHN")
    if culture == "gr":
        given = rng.choice([g for g in GR if GR[g][0][0] not in "PO"])
        family = rng.choice([f for f in GR if f not in ("Γιώργος", "Νίκος", "Δημήτρης", "Κώστας")])
        native = f"{given} {family}"
        latin = [f"{g} {f}" for g in GR[given] for f in GR[family]]
        return Person(native, latin, latin[0].split(), dob, "GRC")
    given, family = rng.choice(EU_GIVEN), rng.choice(EU_FAMILY)
    native = f"{given} {family}"
    expanded = "".join(_EXPAND.get(c, c) for c in native.lower()).title()
    return Person(native, [expanded], native.split(), dob, rng.choice(["DEU", "FRA", "ESP", "POL", "DNK"]))


def _strip(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def _accent(rng: random.Random, text: str) -> str:
    """Accents on some vowels, as in scholarly transliterations (Ḥusayn, Wáng)."""
    marks = {"a": "áâ", "e": "éè", "i": "íî", "o": "óô", "u": "úû"}
    return "".join(rng.choice(marks[c]) if c in marks and rng.random() < 0.5 else c for c in text)


def _typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(len(word))
    op = rng.choice(["swap", "drop", "replace"])
    if op == "drop" and len(word) > 3:
        return word[:i] + word[i + 1:]
    if op == "swap" and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + rng.choice("abcdefghiklmnoprstuvz") + word[i + 1:]


def _variant(rng: random.Random, p: Person, kind: str) -> tuple[str, PartialDate, tuple[str, ...]]:
    tokens, dob = list(p.tokens_latin), p.dob
    if kind == "transliteration":
        return rng.choice([p.script_name, *p.latin_names[1:]] if p.script_name != p.latin_names[0]
                          else p.latin_names), dob, ()
    if kind == "order":
        return " ".join(reversed(tokens)), dob, ()
    if kind == "missing_part" and len(tokens) > 2:
        return " ".join(tokens[:1] + tokens[2:]), dob, ()
    if kind in ("missing_part", "extra_part"):
        return " ".join([*tokens[:1], rng.choice(["Maria", "Ali", "Jan", "Lee", "Ivanovich"]), *tokens[1:]]), dob, ()
    if kind == "nickname":
        return " ".join([NICKNAMES[p.script_name.split()[0]], *tokens[1:]]), dob, ()
    if kind == "initials":
        return " ".join([tokens[0][0] + ".", *tokens[1:]]), dob, ()
    if kind == "diacritics":  # the same spelling with accents added, removed or expanded (ü -> ue)
        if p.nationality in ("DEU", "FRA", "ESP", "POL", "DNK"):
            return rng.choice([p.latin_names[-1], _strip(p.script_name)]), dob, ()
        if p.nationality == "GRC":
            return _strip(p.script_name).upper(), dob, ()
        return _accent(rng, " ".join(tokens)), dob, ()
    if kind == "typo_1":
        i = rng.randrange(len(tokens))
        return " ".join([*tokens[:i], _typo(rng, tokens[i]), *tokens[i + 1:]]), dob, ()
    if kind == "typo_2":
        i, j = rng.sample(range(len(tokens)), 2) if len(tokens) > 1 else (0, 0)
        tokens[i], tokens[j] = _typo(rng, tokens[i]), _typo(rng, tokens[j])
        return " ".join(tokens), dob, ()
    if kind == "dob_format":  # another notation of the same date; parsing normalises it
        return " ".join(tokens), PartialDate.parse(f"{dob.day:02d}.{dob.month:02d}.{dob.year}"), ()
    if kind == "day_month_swap":
        day = dob.day or 1
        swapped = PartialDate(dob.year, day, dob.month) if day <= 12 else PartialDate(dob.year, dob.month, day)
        return " ".join(tokens), swapped, ()
    if kind == "partial_date":
        return " ".join(tokens), rng.choice([PartialDate(dob.year), PartialDate(dob.year, dob.month)]), ()
    if kind == "alias":  # B knows the person under another name, and this one as an alias
        return "Unknown " + rng.choice(["Person", "Subject"]), dob, (p.latin_names[-1],)
    raise ValueError(kind)


def generate(pairs: int, seed: int) -> tuple[list[Record], list[Record], dict[str, str], dict[str, str]]:
    """A side, B side, true partner of each B record (positives), and each B record's kind."""
    rng = random.Random(seed)
    a_side: list[Record] = []
    b_side: list[Record] = []
    truth: dict[str, str] = {}
    kind_of: dict[str, str] = {}
    for n in range(pairs):
        kind = KINDS[n % len(KINDS)]
        person = _person(rng)
        while kind == "nickname" and person.script_name.split()[0] not in NICKNAMES:
            person = _person(rng)  # only names that have a familiar form
        a_id, b_id = f"a{n}", f"b{n}"
        a_side.append(Record(a_id, person.latin_names[0], person.dob, person.nationality, reference=a_id))
        name, dob, aliases = _variant(rng, person, kind)
        b_side.append(Record(b_id, name, dob, person.nationality, reference=b_id, aliases=aliases))
        truth[b_id], kind_of[b_id] = a_id, kind
    for n in range(pairs // 4):  # hard negatives: the same or nearly the same name, another person
        source = rng.choice(a_side)
        kind = NEGATIVE_KINDS[n % 2]
        d = source.birth_date or PartialDate(1970, 1, 1)
        other = PartialDate(d.year + rng.choice([-3, -1, 1, 2, 5]), rng.randint(1, 12), rng.randint(1, 28))
        name = source.name if kind == "same_name_other_dob" else _typo(rng, source.name)
        b_side.append(Record(f"n{n}", name, other, source.nationality, reference=f"n{n}"))
        kind_of[f"n{n}"] = kind
    return a_side, b_side, truth, kind_of


def evaluate(profile: Profile, a_side: list[Record], b_side: list[Record], truth: dict[str, str],
             kind_of: dict[str, str]) -> dict[str, object]:
    """Every A record against every B record, joined on equal keys."""
    hits = join(profile, a_side, b_side)
    strong_medium = {r.rule_id for r in profile.rules if r.strength is not Strength.WEAK}
    found_by_kind: Counter[str] = Counter()
    total_by_kind = Counter(kind_of[b] for b in truth)
    sm_true = sm_false = any_true = any_false = 0
    per_rule: dict[str, Counter[str]] = defaultdict(Counter)
    for (a_id, b_id), rules in hits.items():
        correct = truth.get(b_id) == a_id
        confirmed = bool(rules & strong_medium)
        sm_true += confirmed and correct
        sm_false += confirmed and not correct
        any_true += correct
        any_false += not correct
        for rule in rules:
            per_rule[rule]["true" if correct else "false"] += 1
        if correct:
            found_by_kind[kind_of[b_id]] += 1
    false_by_kind = Counter(kind_of[b] for (a, b), rules in hits.items()
                            if truth.get(b) != a and rules & strong_medium)
    return {
        "profile": profile.profile_id,
        "recall_by_kind": {k: round(found_by_kind[k] / total_by_kind[k], 3) for k in KINDS if total_by_kind[k]},
        "precision_strong_medium": round(sm_true / max(1, sm_true + sm_false), 4),
        "precision_any": round(any_true / max(1, any_true + any_false), 4),
        "recall_any": round(sum(found_by_kind.values()) / max(1, len(truth)), 3),
        "per_rule": {r: {"true": c["true"], "false": c["false"],
                         "precision": round(c["true"] / max(1, c["true"] + c["false"]), 4)}
                     for r, c in sorted(per_rule.items())},
        "strong_medium_false_hits_by_b_kind": dict(false_by_kind),
    }


def table(results: list[dict[str, object]], pairs: int, negatives: int) -> str:
    lines = [f"# Matching quality ({pairs} labelled pairs, {negatives} hard negatives)", "",
             "| variation | " + " | ".join(f"recall {r['profile']}" for r in results) + " |",
             "|---|" + "---:|" * len(results)]
    for kind in KINDS:
        lines.append(f"| {kind} | " + " | ".join(str(r["recall_by_kind"].get(kind, "-"))  # type: ignore[attr-defined]
                                                  for r in results) + " |")
    for name in ("recall_any", "precision_strong_medium", "precision_any"):
        lines.append(f"| **{name.replace('_', ' ')}** | " + " | ".join(str(r[name]) for r in results) + " |")
    for r in results:
        lines += ["", f"Per rule, {r['profile']}:", "", "| rule | true hits | false hits | precision |",
                  "|---|---:|---:|---:|"]
        for rule, c in r["per_rule"].items():  # type: ignore[attr-defined]
            lines.append(f"| {rule} | {c['true']} | {c['false']} | {c['precision']} |")
    return "\n".join(lines) + "\n"


def heldout_table(results: list[dict]) -> str:  # type: ignore[type-arg]
    """The held-out figures (benchmarks/matching_heldout.py) of each profile, one column each."""
    lines = ["## Held-out evaluation (not tuned on)", "",
             "| figure | " + " | ".join(r["profile"] for r in results) + " |", "|---|" + "---:|" * len(results)]

    def row(label: str, get) -> None:  # type: ignore[no-untyped-def]
        lines.append(f"| {label} | " + " | ".join(str(get(r)) for r in results) + " |")

    for population, pick in (("Faker names", lambda r: r), ("independent names", lambda r: r["independent"])):
        def typo(key: str, p=pick):  # type: ignore[no-untyped-def]
            return lambda r: p(r)["typo"][key]

        row(f"{population}, typo'd records, names only: strong+medium recall", typo("recall_strong_medium"))
        row(f"{population}, the same without missing date/given name", typo("recall_strong_medium_keyable"))
        row(f"{population}, typo'd records, names only: any-strength recall", typo("recall_any"))
        row(f"{population}, typo'd records: strong+medium precision", typo("precision_strong_medium"))
        row(f"{population}, keys per record", typo("keys_per_record"))
        for label in ("all_names", "frequent_names"):
            for strength in ("medium", "weak"):
                row(f"{population}, same-date people ({label.replace('_', ' ')}): false {strength} pairs per million",
                    lambda r, la=label, s=strength, p=pick:
                    p(r)["same_date_people"][la]["false_pairs_per_million"].get(s, 0))
            row(f"{population}, same-date people ({label.replace('_', ' ')}): false medium pairs",
                lambda r, la=label, p=pick: p(r)["same_date_people"][la]["false_pairs"].get("medium", 0))
    row("cross-script (Faker names): strong+medium recall", lambda r: r["cross_script"]["recall_strong_medium"])
    row("cross-script (Faker names): any-strength recall", lambda r: r["cross_script"]["recall_any"])
    for r in results:
        lines += ["", f"Per rule, {r['profile']} (typo'd records; false pairs per million same-date comparisons):", "",
                  "| rule | recall | precision | false pairs / M (all names) | false pairs / M (frequent) |",
                  "|---|---:|---:|---:|---:|"]
        for rule, c in r["typo"]["per_rule"].items():
            lines.append(f"| {rule} | {c['recall']} | {c['precision']} | "
                         f"{r['same_date_people']['all_names']['false_pairs_per_million'].get(rule, 0)} | "
                         f"{r['same_date_people']['frequent_names']['false_pairs_per_million'].get(rule, 0)} |")
        ind = r.get("independent", {}).get("typo", {}).get("by_corruption", {})
        lines += ["", f"By corruption / class, {r['profile']} (strong+medium / any; independent names after |):", "",
                  "| corruption or class | strong+medium | any | strong+medium, independent | any, independent |",
                  "|---|---:|---:|---:|---:|"]
        for k, c in {**r["typo"]["by_corruption"], **r["cross_script"]["by_class"]}.items():
            i = ind.get(k, {"strong_medium": "-", "any": "-"})
            lines.append(f"| {k} | {c['strong_medium']} | {c['any']} | {i['strong_medium']} | {i['any']} |")
        for population, data in (("Faker", r), ("independent", r.get("independent", {}))):
            lines += ["", f"Strong/medium false pairs among same-date people, {population} names (examples):", ""]
            for label in ("frequent_names", "all_names"):
                lines += [f"- {a} / {b} ({rules}; {label.replace('_', ' ')})" for a, b, rules
                          in data.get("same_date_people", {}).get(label, {}).get("strong_medium_examples", [])[:10]]
    return "\n".join(lines) + "\n"


def chart(results: list[dict], path: Path) -> None:  # type: ignore[type-arg]
    matplotlib.use("Agg")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        x = r["typo"]["keys_per_record"]
        typo, cross = r["typo"], r["cross_script"]
        for label, y, marker in (("names-only typo recall (strong+medium)", typo["recall_strong_medium"], "o"),
                                 ("cross-script recall (strong+medium)", cross["recall_strong_medium"], "s"),
                                 ("names-only typo recall (any)", r["typo"]["recall_any"], "^")):
            ax.scatter([x], [y], marker=marker, label=f"{r['profile']}: {label}")
        fp = r["same_date_people"]["all_names"]["false_pairs_per_million"].get("medium", 0)
        ax.annotate(f"{r['profile']}\nmedium false pairs/M: {fp}", (x, r["typo"]["recall_strong_medium"]),
                    textcoords="offset points", xytext=(8, -25), fontsize=8)
    ax.set_xlabel("match keys per record (budget, traffic, privacy)")
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Held-out matching quality: recall against keys per record")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--heldout-pairs", type=int, default=5000)
    parser.add_argument("--people-per-culture", type=int, default=1500)
    parser.add_argument("--baseline", type=Path,
                        help="a JSON file of this benchmark's held-out figures for an earlier profile, to show beside")
    parser.add_argument("--heldout-only", action="store_true")
    args = parser.parse_args()
    held = [heldout(p, args.heldout_pairs, per_culture=args.people_per_culture) for p in (STANDARD_PROFILE,
                                                                                           EXACT_PROFILE)]
    if args.baseline:
        held.insert(1, json.loads(args.baseline.read_text()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.heldout_only:
        print(json.dumps(held[0], indent=2, ensure_ascii=False))
        return 0
    (RESULTS / "matching_quality_heldout.json").write_text(json.dumps(held, indent=2, ensure_ascii=False) + "\n")
    chart(held, RESULTS / "matching_quality.png")
    a_side, b_side, truth, kind_of = generate(args.pairs, args.seed)
    results = [evaluate(p, a_side, b_side, truth, kind_of) for p in (STANDARD_PROFILE, EXACT_PROFILE)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = table(results, args.pairs, len(b_side) - len(truth)) + "\n" + heldout_table(held)
    (RESULTS / "matching_quality.md").write_text(text)
    (RESULTS / "matching_quality.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
