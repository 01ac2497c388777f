"""Known-name spelling correction for the medium rules of `standard/5`.

A mistyped word is, almost always, not a name anyone is called: `Marvni`, `Gabirel`, `Kowalksi`.
Two distinct real names one letter apart (`Martin`/`Marvin`, `Janet`/`Janett`, `Kathe`/`Kathy`) are
different people. So the medium rules fold a word only when it is *not* a known name and exactly
one known name lies one edit away (substitution, insertion, deletion, adjacent transposition, or
an OCR confusion such as `rn`/`m`): a listed name is never changed, and two known names never meet
through this step, except that a rare name one clear slip from a listed name is read as both (a
typo of a frequent name is often some rare name: `Alexantra` for `Alexandra`).

The known names are `psi/data/name_words.txt`: every given and family name of every locale of the
Faker package's person provider (public name statistics per country, MIT licence), read as
`psi.normalize` reads names, one word a line with how many locales list it, its variant group
(spelling variants of one name share a name symbol in rigour's Wikidata-derived name data:
Omar/Umar, not Kathe/Kathy; two widespread Latin-script names such as Anna/Ana are never one
group), whether it is a Chinese or Korean syllable, and its role: mostly a given name, mostly a
family name, or common as both; and, as rarer names without locales or role (their variant groups
from the name items they are forms of), every one-word Latin-script form of rigour's person-name data
(Wikidata's given and family name items) that Faker lacks.
`benchmarks/data/make_name_words.py` rebuilds it; the first 16 hex digits of its SHA-256 enter the
profile hash (`name_words_version`), so nodes with different lists refuse each other instead of
silently missing hits. docs/matching.md section 5.4 defines every step.

Why by hand: jellyfish and rapidfuzz give distances, not a dictionary lookup by edit neighbourhood;
symspellpy does that but ships an English word-frequency list, not names. The symmetric-delete index
below is a few lines.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import cache, lru_cache
from importlib.resources import files

_RARE = 0.3  # the weight of a name only rigour lists: a listed name of one locale weighs 2
_MIN_LENGTH = 4  # shorter words have too many one-edit neighbours to correct by any edit (see `candidates`)
# OCR and handwriting confusions read either way (after lower-casing): one or two letters for one.
_OCR = (("rn", "m"), ("cl", "d"), ("vv", "w"), ("li", "h"), ("ri", "n"), ("l", "i"), ("c", "e"), ("o", "c"),
        ("h", "b"), ("u", "v"), ("n", "h"))


@cache
def _raw() -> bytes:
    return files("psi").joinpath("data", "name_words.txt").read_bytes()


def name_words_version() -> str:
    """The first 16 hex digits of the SHA-256 of the known-name list (pinned in the profile hash)."""
    return hashlib.sha256(_raw()).hexdigest()[:16]


@cache
def _words() -> dict[str, tuple[int, str, str]]:
    """Each listed word -> (locales that list it, its code-dob reading or "-", flags: s = CJK syllable,
    g = mostly a given name, f = mostly a family name, w = a rare name)."""
    out = {}
    for line in _raw().decode().splitlines():
        word, locales, reading, _, flags = line.split()
        out[word] = (int(locales), reading, flags)
    return out


@cache
def _code_groups() -> dict[str, frozenset[str]]:
    """Name code -> the variant groups of the known names that share it (two or more)."""
    groups: dict[str, set[str]] = {}
    for line in _raw().decode().splitlines():
        _, _, reading, code, _ = line.split()
        if reading != "-":
            groups.setdefault(code, set()).add(reading)
    return {code: frozenset(g) for code, g in groups.items()}


def code_group(code: str) -> str | None:
    """The one variant group of known names with this shared code, None if none or several."""
    groups = _code_groups().get(code, frozenset())
    return next(iter(groups)) if len(groups) == 1 else None


@cache
def _syllables() -> frozenset[str]:
    return frozenset(word for word, (_, _, flags) in _words().items() if "s" in flags)


def cjk_syllable(word: str) -> bool:
    """True if the word is one romanised Chinese or Korean name syllable (Wang, Kim, Min)."""
    return word in _syllables()


def cjk_syllables(word: str) -> bool:
    """True if the word is a run of romanised Chinese or Korean name syllables of two or more letters
    (Sunsin, Xiaoming); one-letter syllables (a, e, i, o) would make most Latin words such a run (Emilie)."""
    syllables = _syllables()
    ends = {0}
    for end in range(1, len(word) + 1):
        if any(word[start:end] in syllables for start in ends if 2 <= end - start <= 6):
            ends.add(end)
    return len(word) in ends


def known_names() -> Iterable[str]:
    return iter(_words())


def listed_name(word: str) -> bool:
    """A name of Faker's per-country lists."""
    return _words().get(word, (0,))[0] > 0


def known_name(word: str) -> bool:
    """A listed name, or a rarer one only rigour's person-name data has."""
    entry = _words().get(word)
    return entry is not None and (entry[0] > 0 or "w" in entry[2])


# An East Slavic patronymic (Nikolaevich, Nikolayevich, Petrovna): the second word of a given name, so a
# name written with one after the given name is family name first (Ельцин Борис Николаевич).
_PATRONYMIC = re.compile(r"[a-z]{2,}(?:ovich|evich|ovych|evych|ovitch|evitch|owitsch|ewitsch|ovna|evna|ichna)")


def role(word: str) -> str:
    """"g" for a word that is mostly a given name (or a patronymic), "f" mostly a family name, "" for either
    or unknown; an unknown word has the role its readings (`corrections`) share, else none (Reyis: Regis or
    Reyes, a given or a family name)."""
    if _PATRONYMIC.fullmatch(word):
        return "g"
    roles = {_known_role(w) for w in corrections(word)}
    return roles.pop() if len(roles) == 1 else ""


def _known_role(word: str) -> str:
    flags = _words().get(word, (0, "-", ""))[2]
    return "g" if "g" in flags else "f" if "f" in flags else ""


def variant_group(word: str) -> str | None:
    """For a known name whose name code another known name shares (Kathe/Kathy, Omar/Umar): the first
    spelling of its group of variants of one name (Omar for Umar; Kathe and Kathy differ). Else None."""
    reading = _words().get(word, (0, "-", ""))[1]
    return None if reading == "-" else reading


def _ocr_variants(word: str) -> set[str]:
    out = set()
    for x, y in _OCR:
        for src, dst in ((x, y), (y, x)):
            start = word.find(src)
            while start != -1:
                out.add(word[:start] + dst + word[start + len(src):])
                start = word.find(src, start + 1)
    return out


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _edits(word: str) -> set[str]:
    """Every string one deletion, transposition, substitution or insertion from the word."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out.update(a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1)
    out.update(a + ch + b[1:] for a, b in splits if b for ch in _LETTERS)
    out.update(a + ch + b for a, b in splits for ch in _LETTERS)
    out.discard(word)
    return out


def candidates(word: str) -> list[str]:
    """The known names one edit (or one OCR confusion) from an unknown word, sorted; for a name only rigour
    lists, the listed names (a typo of a frequent name is often a rare name); [] for a listed word.

    Not a letter added or dropped at the start (an OCR confusion there is read): an unknown word that is a
    known name with one more or one fewer first letter is more often another real name (Ghassan/Hassan,
    Yannick/Annick, Farrington/Arrington). A word of three letters is read only as a longer name with a
    letter left out (Yrk/York) or two letters swapped (Tmo/Tom): a letter changed in it often gives
    another real name.
    """
    words = _words()
    rare = word in words and "w" in words[word][2]
    if (word in words and not rare) or len(word) < _MIN_LENGTH - 1 or cjk_syllables(word):
        return []
    found = {w for w in _edits(word) if w[0] == word[0] or len(w) == len(word)} | _ocr_variants(word)
    if len(word) < _MIN_LENGTH:  # three letters: only a letter left out of a longer name, or two swapped
        found = {w for w in found if len(w) > len(word) or sorted(w) == sorted(word)}
    return sorted(w for w in found if (listed_name(w) if rare else known_name(w)))


_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEY_AT = {ch: (r, c) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
_VOWEL_LETTERS = frozenset("aeiouy")


def _near(a: str, b: str) -> bool:
    """Keys that touch on a QWERTY keyboard (QWERTZ and AZERTY move few letters)."""
    (ra, ca), (rb, cb) = _KEY_AT.get(a, (9, 0)), _KEY_AT.get(b, (-9, 0))
    return abs(ra - rb) <= 1 and abs(ca + ra / 2 - cb - rb / 2) <= 1


def slip_weight(typed: str, name: str) -> float:
    """How likely a person typing `name` writes `typed` (one edit apart): a noisy-channel weight.

    Slips of the hand dominate real typing errors (Damerau 1964; Kukich 1992): a neighbouring key,
    two letters swapped, a doubled letter dropped or added. The first letter is rarely wrong.
    """
    if (typed, name) in _OCR_PAIRS or _ocr_pair(typed, name):
        weight = 1.0
    elif len(typed) == len(name):
        i = next(k for k in range(len(name)) if typed[k] != name[k])
        swapped = i + 1 < len(name) and typed[i] == name[i + 1] and typed[i + 1] == name[i]
        vowels = typed[i] in _VOWEL_LETTERS and name[i] in _VOWEL_LETTERS  # a spelling slip (Husain/Hosain)
        weight = 1.0 if swapped or _near(typed[i], name[i]) else 0.5 if vowels else 0.1
    elif len(typed) < len(name):  # a letter left out
        i = next((k for k in range(len(typed)) if typed[k] != name[k]), len(typed))
        weight = 1.0 if (i > 0 and name[i] == name[i - 1]) or (i + 1 < len(name) and name[i] == name[i + 1]) else 0.5
    else:  # a letter added
        i = next((k for k in range(len(name)) if typed[k] != name[k]), len(name))
        around = typed[i - 1:i] + typed[i + 1:i + 2]
        weight = 1.0 if any(ch == typed[i] or _near(ch, typed[i]) for ch in around) else 0.3
    return weight * (0.3 if typed[:1] != name[:1] else 1.0)


_OCR_PAIRS: frozenset[tuple[str, str]] = frozenset()


def _ocr_pair(typed: str, name: str) -> bool:
    return typed in _ocr_variants(name)


def ranked(word: str) -> list[tuple[float, str]]:
    """The candidates, best first: slip weight times (1 + the square root of the number of locales that list
    the name), or times _RARE for a name only rigour lists."""
    words = _words()
    return sorted(((slip_weight(word, c) * (1 + words[c][0] ** 0.5 if words[c][0] else _RARE), c)
                   for c in candidates(word)), key=lambda item: (-item[0], item[1]))


@lru_cache(maxsize=1 << 16)
def corrections(word: str) -> tuple[str, ...]:
    """The known names the word is read as: itself when listed or no candidate is clearly first; a name only
    rigour lists also as the listed name it is clearly a slip of; else the best candidate, and the second and
    third too when they weigh at least half as much (name-dob reads a word of three by its best)."""
    found = ranked(word)
    if not found:
        return (word,)
    if known_name(word):  # a name only rigour lists: itself, and the listed name it is clearly a slip of
        return (word, found[0][1]) if len(found) == 1 or found[1][0] < found[0][0] * _SECOND else (word,)
    close = tuple(name for weight, name in found if weight >= found[0][0] * _SECOND)
    return (word,) if len(close) > 3 else close  # four or more readings: too unsure to fold at medium


_SECOND = 0.5


def corrected(word: str) -> str:
    return corrections(word)[0]
