"""Name normalisation for matching across spellings and scripts (profile `standard/5`).

`name_tokens` transliterates any script to Latin (the `anyascii` library), folds case and
diacritics, splits on punctuation and at capitals inside Latin words ("McDonald"), and then applies
the hand-written rules below. A CJK-script name keeps each run of syllables as one word (a name
written as one run, "WangXiaoMing": the family syllable, then the rest). `given_family` reads the
words as given and family name in the order the source or the script's convention gives, and the other
way round where no name role contradicts it ("Kim Minjun", "Smith John", "Everett Sung"; not "Alexander
Anthony"). `name_code` is a consonant key that keeps the information that tells people apart (the class
of the first vowel, a feminine ending), `skeleton` the loose consonant key of `standard/1` kept for the
weak rules.

Why by hand: jellyfish's Soundex/NYSIIS/Metaphone codes were measured (docs/matching.md): they
do not bridge romanisation schemes (Metaphone YLTSN/JLSN for Yeltsin/Jelzin) and Soundex
merges different names (Christian/Christopher: C623). The OpenSanctions name stack (rigour)
needs ICU compiled from source. The tables here are the small curated part: Arabic `Abd`
compounds and `-uddin`/`-ullah` endings, articles, the particles that are also given names
(only dropped between words), Korean family-name romanisations, and the transliteration
spellings of one sound.
"""

from __future__ import annotations

import re
import unicodedata
from importlib.metadata import version

from anyascii import anyascii

from psi.spelling import (
    cjk_syllable,
    cjk_syllables,
    code_group,
    corrected,
    known_name,
    listed_name,
    role,
    variant_group,
)

# The versions that shape keys, folded into the profile hash (docs/matching.md, "Profile hash"):
# Unicode's tables (NFKC, case folding, white space, alphanumerics) come with CPython.
UNICODE_VERSION = unicodedata.unidata_version
ANYASCII_VERSION = version("anyascii")

TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "herr", "frau", "mme", "mlle"})
SUFFIXES = frozenset({"jr", "sr"})
# Name particles. Several are also given names or syllables (Ben, Abu, Bin, De, Du, Le, Van, Da):
# a particle is dropped only between two words, or at the start of a particle chain (von der, de la).
PARTICLES = frozenset({
    "von", "van", "der", "den", "de", "du", "des", "la", "le", "del", "della", "di", "da", "dos", "das",
    "bin", "bn", "ibn", "bint", "ben", "abu", "ould", "ter", "zu", "y", "ap",
})
ARTICLES = frozenset({"al", "el", "ul", "ar", "as", "ad", "an", "at", "az", "ash", "ur", "us", "ed", "ud"})
ARABIC_ARTICLES = frozenset({"al", "el"})  # dropped on their own; the other ARTICLES only inside compounds
ABD_WORDS = frozenset({"abd", "abdul", "abdel", "abdal", "abdol", "abdoul", "abdur", "abdus", "abdil", "bd"})
COMPOUND_TAILS = frozenset({"din", "deen", "dine", "allah", "ullah", "ulla", "alla"})
# Korean family names: variant romanisation -> one form (first or last word only).
KOREAN_FAMILY = {
    "gim": "kim", "ghim": "kim", "yi": "lee", "rhee": "lee", "rhie": "lee", "ri": "lee", "i": "lee", "lee": "lee",
    "pak": "park", "bak": "park", "bahk": "park", "bag": "park", "choe": "choi", "chey": "choi",
    "jeong": "jeong", "chung": "jeong", "chong": "jeong", "jung": "jeong", "gang": "kang", "jo": "cho",
    "yun": "yoon", "gwon": "kwon", "whang": "hwang", "ahn": "an", "ryu": "yu", "yoo": "yu", "rhyu": "yu",
    "jeon": "jeon", "chun": "jeon", "chon": "jeon", "mun": "moon", "sohn": "son", "pae": "bae", "paek": "baek",
    "paik": "baek", "baeg": "baek", "huh": "heo", "hur": "heo", "roh": "noh", "no": "noh", "suh": "seo",
    "shin": "shin", "sin": "shin", "oh": "oh", "o": "oh", "im": "lim", "rim": "lim", "go": "ko", "koh": "ko",
}
# A name with a character in this range (CJK radicals to Hangul syllables) splits its transliteration
# at every capital: anyascii writes these syllables capitalised and joined ("WangXiaoMing", "ISunSin").
CJK_FIRST, CJK_LAST = "\u2e80", "\ud7af"
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_CAMEL_CJK = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # ISunSin: one-letter syllables
_MARKS = re.compile(r"['`\u02bc\u02bb\u2019]")  # apostrophes and the ayn/hamza marks of transliterations
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_ABD_JOINED = re.compile(r"^a?bd(?:[aeiou]?u?l(?=[a-z]{3})|[aeiou]?([rstdnz])(?=\1))?([a-z]{3,})$")
_ATTACHED_ARTICLE = re.compile(r"^(?:al|el)(?=[b-df-hj-np-tv-z][aeiouy][a-z]{2,}$)")
_DIN_TAIL = re.compile(r"(?<=[a-z]{3})(?:[aeiou]?[dl]?|[aeiou]?d)?d(?:i|ee)ne?$")
_LAH_TAIL = re.compile(r"(?<=[a-z]{3})[aeiou]?l?lah?$")
# Order matters: longer spellings first. Each maps a family of transliterations to one letter.
SKELETON_RULES = (
    ("tsch", "c"), ("sch", "s"), ("tch", "c"), ("dzh", "j"), ("zh", "j"), ("ch", "c"), ("sh", "s"),
    ("kh", "h"), ("ph", "f"), ("th", "t"), ("ts", "c"), ("tz", "c"), ("ck", "k"), ("dj", "j"), ("gh", "g"),
    ("ks", "x"), ("q", "k"), ("z", "c"), ("w", "v"), ("j", ""),
)
_VOWELS = re.compile(r"[aeiouy]")
_ABJAD_LONG_VOWELS = re.compile(r"[wvy]")  # in a word without a, e, i, o, u these letters write long vowels
_SIBILANTS = re.compile(r"tz|ts(?!ch)|z")
_H_NOT_BEFORE_VOWEL = re.compile(r"h(?![aeiouy])")
_SILENT_E = re.compile(r"(?<=[^aeiou])e$")
_GLIDE_BEFORE_VOWEL = re.compile(r"[yj](?=[aeiou])")
_FEMININE = re.compile(r"ah?$")
_GLIDE = re.compile(r"^(?:y|j(?!eo|eu|ae)|i|g[ie])(?=[aeiou])")  # not Korean jeo/jeu/jae


def fold(text: str) -> str:
    """NFKC, then transliteration to ASCII (anyascii): diacritics gone, case kept."""
    return anyascii(unicodedata.normalize("NFKC", text))


def cjk_script(text: str) -> bool:
    """True for a name with a Han, kana or Hangul character: its readings write every vowel of a syllable."""
    return any(CJK_FIRST <= ch <= CJK_LAST for ch in text)


def _words(text: str) -> tuple[list[str], set[str]]:
    """The words of a name, and the pieces between white space (a Korean family name stands alone)."""
    latin = _MARKS.sub("", fold(text))
    cjk = cjk_script(text)
    # anyascii joins a run's syllables (WangXiaoMing): a run written apart is one name part, so syllable
    # splits cannot merge different names (玲 敖 Ling Ao / Lin Gao); a name written as one run puts the
    # family name first, its first syllable (ISunSin, WangXiaoMing).
    if cjk and len(latin.split()) == 1:
        latin = _CAMEL_CJK.sub(" ", latin, count=1)
    pieces = {_NON_ALNUM.sub("", piece) for piece in latin.lower().split()}  # before McDonald, XiuYun split
    if not cjk:
        # McDonald, DeVito; not a word that starts in lower case (a slip before the capital: sSara)
        latin = _LATIN_WORD.sub(lambda m: _CAMEL.sub(" ", m[0]) if m[0][0].isupper() else m[0], latin)
    return [w for w in _NON_ALNUM.split(latin.lower()) if w], pieces


def _compounds(words: list[str]) -> list[str]:
    """Join `Abd al-Rahman`, `Abdul Rahman`, `Nur ad-Din`, `Habib Allah` into one word each, one spelling."""
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in ABD_WORDS and i + 1 < len(words):
            j = i + 1
            while j < len(words) - 1 and words[j] in ARTICLES:
                j += 1
            word, i = "abd" + words[j], j
        elif word in COMPOUND_TAILS and out:
            out[-1] += "din" if word.startswith("d") else "lah"
            i += 1
            continue
        elif word in ARTICLES and i + 1 < len(words) and words[i + 1] in COMPOUND_TAILS and out:
            i += 1
            continue
        if len(words) > 1 and not listed_name(word):  # an article attached (Almasri, Elsayed), not Allison
            word = _ATTACHED_ARTICLE.sub("", word)
        joined = _ABD_JOINED.match(word)
        if joined:
            word = "abd" + _LAH_TAIL.sub("lah", joined.group(2)) if len(word) > 4 else word
        elif len(word) >= 7:
            word = _LAH_TAIL.sub("lah", _DIN_TAIL.sub("din", word))
        out.append(word)
        i += 1
    return out


def _strip_particles(words: list[str], pieces: set[str]) -> list[str]:
    kept: list[str] = []
    n = len(words)
    for i, word in enumerate(words):
        chain_start = i == 0 and n > 2 and words[1] in PARTICLES
        between = 0 < i < n - 1
        if word in ARABIC_ARTICLES and i < n - 1 and n > 2:
            continue  # the Arabic article, written apart, before another word (Al Bryant: a given name)
        if word in PARTICLES and word in pieces and (between or chain_start):  # not a syllable (Wei BinGang)
            continue
        kept.append(word)
    while len(kept) > 2 and kept[0] in TITLES:  # a title only before two or more other words
        kept = kept[1:]
    while len(kept) > 2 and kept[-1] in SUFFIXES:
        kept = kept[:-1]
    return kept


def name_tokens(text: str) -> list[str]:
    """The words of a name, in any script, as lower-case ASCII, after the rules in this module's docstring."""
    split, pieces = _words(text)
    words = _strip_particles(_compounds(split), pieces)
    if len(words) >= 2:
        for pos in (0, len(words) - 1):
            if words[pos] in pieces:  # not a syllable of a given name (Yi Sun-sin: sin is not Shin)
                words[pos] = korean_family(words[pos])
    return words


def korean_family(word: str) -> str:
    """One spelling of a Korean family name's romanisations (Gim, Ghim -> Kim); any other word as it is."""
    return KOREAN_FAMILY.get(word, word)


def family_first(first: list[str], last: list[str]) -> bool:
    """True when a name may be written family name first: no name role contradicts it (psi.spelling.role).

    No word before the split is mostly a given name and none after it mostly a family name (Smith John,
    Gibbons James, Everett Sung: roles prove the order or leave it open), or the name is a romanised
    Chinese or Korean one written family first (`_cjk_family`). Not Anthony Alexander (both mostly given
    names). Where a word is a Chinese or Korean syllable (Fan Xiang / Xiang Fan: two people), an open
    order is not enough: every word before must be mostly a family name, or every word after mostly a
    given name.
    """
    if not (first and last):
        return False
    roles_first, roles_last = [role(w) for w in first], [role(w) for w in last]
    if "g" in roles_first or "f" in roles_last:
        return _cjk_family(first, last)
    if not any(map(cjk_syllable, first + last)):
        return True
    return all(r == "f" for r in roles_first) or all(r == "g" for r in roles_last) or _cjk_family(first, last)


def _cjk_family(family: list[str], given: list[str]) -> bool:
    """One Korean family name or Chinese family syllable, and a given name of two or more syllables:
    the structure of a Chinese or Korean name (Wang Xiaoming, Kim Min-jun, 정수 민) says which is which."""
    run = "".join(given)
    syllables = ((len(given) > 1 and all(map(cjk_syllable, given)))  # U-Jin: one-letter syllables written apart
                 or (not cjk_syllable(run) and cjk_syllables(run)))
    return len(family) == 1 and (family[0] in KOREAN_FAMILY.values()
                                 or (cjk_syllable(family[0]) and role(family[0]) != "g")) and syllables


def given_family(tokens: list[str], split: int | None, *, cjk: bool) -> list[tuple[list[str], list[str]]]:
    """The readings of a name as (given words, family words), its order respected.

    `split` is where the given-name field ends when the source keeps the parts apart; a full name is read
    by its script's convention: a CJK-script name family name first (its first word), any other given
    name first, at each split between two words. The reverse reading is added where no role contradicts
    it (`family_first`, `_cjk_family`), so a swap of two names common as given names (Alexander Anthony /
    Anthony Alexander) is not one name.
    """
    if cjk:
        out = [(tokens[1:], tokens[:1])]
        return [*out, (tokens[:-1], tokens[-1:])] if _cjk_family(tokens[-1:], tokens[:-1]) else out
    out = []
    for k in [split] if split is not None else range(1, max(2, len(tokens))):
        first, last = tokens[:k], tokens[k:]
        out.append((first, last))
        if family_first(first, last):
            out.append((last, first))
    return out


def _consonants(token: str, *, keep_h: bool) -> str:
    text = token
    if not has_vowels(text):  # an abjad transliteration: w, v and y stand for long vowels
        text = text[:1] + _ABJAD_LONG_VOWELS.sub("", text[1:])
    if keep_h:  # the code keeps ts/tz/z (Zaytsev) apart from k (Kazakov)
        text = _SIBILANTS.sub("Z", text)
    for spelling, letter in SKELETON_RULES:
        text = text.replace(spelling, letter)
    text = text.replace("c", "k").replace("Z", "z")
    # With keep_h, h is kept before a vowel (Hassan, Mohammed) and dropped elsewhere (Ahmed/Ahmad, Sarah).
    text = _H_NOT_BEFORE_VOWEL.sub("", text) if keep_h else text.replace("h", "")
    consonants = _VOWELS.sub("", text) if len(text) > 1 else text
    out: list[str] = []
    for ch in consonants or text[:1]:
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)


def skeleton(token: str) -> str:
    """The loose consonant key (all vowels and h dropped): bridges abjad scripts and vowel typos."""
    return _consonants(_GLIDE.sub("", token), keep_h=False)


def _short(token: str) -> str:
    """A short word keeps its letters, w read as v, y as i, o as u (Omar/Umar; Lan/Lin differ)."""
    letters = token.translate(str.maketrans("wyo", "viu"))
    return "".join(ch for i, ch in enumerate(letters) if i == 0 or letters[i - 1] != ch)


def name_code(token: str) -> str:
    """A consonant key that keeps what tells people apart.

    Initial glides are dropped (Yeltsin/Eltsine/Jelzin, Yosef/Josef/Iosif, Giorgos/Yorgos), b and v
    are one letter (Greek, Hebrew), h is kept before a vowel; the key adds whether the word starts
    with a vowel, the sequence of vowel classes (o/u against a/e/i: Hassan vs Hussein, Omar vs Amir,
    Veselov vs Vasilev) and a feminine `a` ending (Aleksandr vs Aleksandra, Kowalski vs Kowalska).
    A word of at most four letters or fewer than two consonants keeps its letters (`_short`), so
    short names (Ana, Ali, Lan, Lin) never collapse to one or two consonants.
    """
    if not has_vowels(token):
        return "=" + token  # an abjad word: its letters as written
    body = _GLIDE.sub("", token)
    core = _consonants(body, keep_h=True).replace("b", "v")
    if len(core) < 2 or len(token) <= 4:
        return _short(token)
    vowels = _GLIDE_BEFORE_VOWEL.sub("", _SILENT_E.sub("", body))  # no silent final e
    classes = "".join("u" if ch in "ou" else "a" for ch in re.findall(r"[aeiou]", vowels))
    klass = re.sub(r"(.)\1+", r"\1", classes)
    initial = "^" if body[:1] in "aeiouy" else ""
    feminine = "~a" if _FEMININE.search(token) else ""
    return f"{initial}{klass}:{core}{feminine}"


def has_vowels(token: str) -> bool:
    """False for an abjad transliteration (Arabic, Hebrew script), which writes no short vowels."""
    return bool(re.search(r"[aeiou]", token))


def consonant_count(code: str) -> int:
    return len(re.sub(r"[aeiouy~^=:]", "", code.rsplit(":", maxsplit=1)[-1]))


def word_code(token: str) -> str:
    """The name code of a word, or its letters when two known names share that code (Kathe/Kathy).

    A code may merge any number of unknown spellings with at most one known name: different real
    names never meet through it.
    """
    code = name_code(token)
    if known_name(token):  # a rare name too: its own variant group (Rula and Rola are two names)
        group = variant_group(token)
    else:  # an unknown spelling: the one group with its code, else the group of the name it is a slip of
        group = code_group(code)
        fixed = corrected(token)
        if group is None and fixed != token and name_code(fixed) == code:
            group = variant_group(fixed)  # Hussaen: Hussain's group, not Husen's or Hosseini's
    return code if group is None else "=" + group


# Greek script, read two ways (a Greek-script name yields both): ELOT 743, which Greek passports
# use (ου ou, υ y, η i, μπ mp, ντ nt, γκ gk), and the phonetic spelling older documents and other
# countries' officials write (αι e, ει/οι/υ/η i, μπ b, ντ d, γκ g; γ as y before e and i at the start).
# anyascii's own reading (ου as "oy") matches neither.
_GREEK_COMMON = {
    "ου": "ou", "γγ": "ng", "γξ": "nx", "γχ": "nch", "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z",
    "η": "i", "θ": "th", "ι": "i", "κ": "k", "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p", "ρ": "r",
    "σ": "s", "ς": "s", "τ": "t", "φ": "f", "χ": "ch", "ψ": "ps", "ω": "o",
}
_GREEK_ELOT = {**_GREEK_COMMON, "αυ": "av", "ευ": "ev", "υ": "y", "μπ": "mp", "ντ": "nt", "γκ": "gk"}
_GREEK_PHONETIC = {**_GREEK_COMMON, "αι": "e", "ει": "i", "οι": "i", "υι": "i", "αυ": "av", "ευ": "ev", "υ": "i",
                   "μπ": "b", "ντ": "d", "γκ": "g"}
_GREEK = re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]")


def _greek(text: str, table: dict[str, str], *, initial_y: bool) -> str:
    plain = "".join(c for c in unicodedata.normalize("NFD", text.casefold()) if not unicodedata.combining(c))
    out, i = [], 0
    while i < len(plain):
        start = i == 0 or not plain[i - 1].isalpha()
        if initial_y and start and plain[i] == "γ" and plain[i + 1:i + 2] in ("ε", "ι", "η", "υ"):
            out.append("y")
            i += 1
        elif plain[i:i + 2] in table:
            out.append(table[plain[i:i + 2]])
            i += 2
        else:
            out.append(table.get(plain[i], plain[i]))
            i += 1
    return "".join(out)


def readings(text: str) -> list[str]:
    """The ways a name is read into Latin before `name_tokens`: itself, or two for Greek script."""
    if not _GREEK.search(text):
        return [text]
    return [_greek(text, _GREEK_ELOT, initial_y=False), _greek(text, _GREEK_PHONETIC, initial_y=True)]


def token_lists(text: str) -> list[list[str]]:
    """`name_tokens` of each reading of a name (one, or two for Greek script), without empty ones."""
    out: list[list[str]] = []
    for reading in readings(text):
        tokens = name_tokens(reading)
        if tokens and tokens not in out:
            out.append(tokens)
    return out

