"""Name normalisation for matching across spellings and scripts.

`name_tokens` transliterates any script to Latin (anyascii), folds case and
diacritics, splits on punctuation and on the word boundaries that
transliterated Chinese keeps only as capitals ("WangWei"), and drops titles and
particles. `skeleton` reduces one token to a consonant key that different
transliteration schemes and vowel spellings share (Yeltsin, Eltsine, Jelzin,
El'cin -> "lcn"; Mohammed, Muhammad, mhmd -> "mhmd"). The skeleton table is
ours and small; the transliteration is the library's.
"""

from __future__ import annotations

import re
import unicodedata

from anyascii import anyascii

# Titles and name particles (Latin forms, after transliteration).
PARTICLES = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sir", "herr", "frau", "mme", "mlle", "sr", "jr",
    "von", "van", "der", "den", "de", "du", "des", "la", "le", "del", "della", "di", "da", "dos", "das",
    "al", "el", "bin", "bn", "ibn", "bint", "ben", "abu", "ould", "ter", "zu", "y",
})
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_MARKS = re.compile(r"['`\u02bc\u02bb\u2019]")  # apostrophes and the ayn/hamza marks of transliterations
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# Order matters: longer spellings first. Each maps a family of transliterations to one letter.
_SKELETON_RULES = (
    ("tsch", "c"), ("sch", "s"), ("tch", "c"), ("dzh", "j"), ("zh", "j"), ("ch", "c"), ("sh", "s"),
    ("kh", "h"), ("ph", "f"), ("th", "t"), ("ts", "c"), ("tz", "c"), ("ck", "k"), ("dj", "j"), ("gh", "g"),
    ("ks", "x"), ("q", "k"), ("z", "c"), ("w", "v"), ("j", ""),
)
_VOWELS = re.compile(r"[aeiouy]")


def fold(text: str) -> str:
    """NFKC, Latin transliteration, case folding; diacritics and apostrophes gone."""
    return anyascii(unicodedata.normalize("NFKC", text))


def name_tokens(text: str) -> list[str]:
    """The words of a name, in any script, as lower-case ASCII; titles and particles dropped."""
    latin = _CAMEL.sub(" ", _MARKS.sub("", fold(text)))
    words = [w for w in _NON_ALNUM.split(latin.lower()) if w]
    kept = [w for w in words if w not in PARTICLES]
    return kept or words  # a name made only of particles keeps them


def skeleton(token: str) -> str:
    """A consonant key shared by common transliterations and vowel spellings of one word."""
    # An abjad transliteration has no vowel letters; its w stands for the vowel u (mnswr = Mansur).
    text = token.replace("w", "") if not re.search(r"[aeiou]", token) else token
    for spelling, letter in _SKELETON_RULES:
        text = text.replace(spelling, letter)
    text = text.replace("c", "k")
    consonants = _VOWELS.sub("", text.replace("h", "")) if len(text) > 1 else text
    out: list[str] = []
    for ch in consonants or text[:1]:
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)
