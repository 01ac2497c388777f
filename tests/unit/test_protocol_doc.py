"""docs/protocol.md against the code: its constants table and its tag-length formula.

The doc is read for values, not prose: a row of the constants table or the formula line
that no longer matches the code fails here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from psi import followup, profiles, tags
from psi.tag_sync import CHUNK_OVERHEAD
from server.service import _MARGIN

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
CODE: dict[str, object] = {
    "FALSE_POSITIVE_BITS": tags.FALSE_POSITIVE_BITS,
    "MIN_TAG_BYTES": tags.MIN_TAG_BYTES,
    "TAG_MATERIAL_BYTES": tags.TAG_MATERIAL_BYTES,
    "LABEL_AD": tags.LABEL_AD,
    "LABEL_SEPARATOR": tags._LABEL_SEP,
    "CARDINALITY_DOMAIN": tags.CARDINALITY_DOMAIN,
    "FOLLOWUP_KEY_INFO": followup.FOLLOWUP_INFO,
    "FOLLOWUP_PROOF_DOMAIN": followup._DOMAIN,
    "KEY_DOMAIN": profiles._KEY_DOMAIN,
    "CHUNK_OVERHEAD": CHUNK_OVERHEAD,
    "FRAMING_MARGIN": _MARGIN,
}


def _documented() -> dict[str, str]:
    return dict(re.findall(r"^\| `([A-Z_]+)` \| `([^`]+)` \|$", DOC, re.MULTILINE))


def _as_code(text: str, like: object) -> object:
    if isinstance(like, bytes):
        return bytes([int(text, 16)]) if text.startswith("0x") else text.encode()
    return int(text)


@pytest.mark.parametrize("name", sorted(CODE))
def test_documented_constant_is_the_code_constant(name: str) -> None:
    documented = _documented()
    assert name in documented, f"docs/protocol.md has no row for {name}"
    assert _as_code(documented[name], CODE[name]) == CODE[name]


def test_every_documented_constant_is_checked() -> None:
    assert set(_documented()) == set(CODE)


def test_documented_tag_length_formula_is_the_code() -> None:
    formula = re.search(r"`tag_length = (clamp\(.+?\))` bytes", DOC)
    assert formula, "the tag-length formula is missing from docs/protocol.md"
    names = {"clamp": lambda v, lo, hi: min(max(v, lo), hi), "ceil": math.ceil, "log2": math.log2}
    for count in (0, 1, 2, 5, 1000, 123_457, 1 << 20, 10**9):
        for query in (0, 1, 64, 1 << 20, 10**9):
            scope = {**names, "tag_count": max(count, 1), "max_query_size": max(query, 1)}  # 0 counts as 1
            assert eval(formula.group(1), {"__builtins__": {}}, scope) == tags.tag_length(count, query)
