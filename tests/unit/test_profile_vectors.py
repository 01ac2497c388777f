"""The record->key vectors and docs/matching.md against the code, so neither can drift.

The committed files must equal a fresh run of `tests/vectors/make_profile_vectors.py`; the keys
and the profile hash are then recomputed from the layout the docs give (protocol.md section 2,
matching.md section 7) without the profile code, as an outside implementation would.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from anyascii import anyascii

from psi import normalize, oprf
from psi.client_query import check_parameters
from psi.errors import ParameterMismatchError
from psi.messages import Limits, Mode, Parameters
from psi.profiles import EXACT_PROFILE, PROFILES, STANDARD_PROFILE, Profile
from tests.vectors import make_profile_vectors as gen

ROOT = Path(__file__).resolve().parents[2]
FILES = {p.profile_id: json.loads(gen.vector_path(p).read_text()) for p in PROFILES.values()}


def _lp(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _key(rule: str, parts: list[str]) -> bytes:
    return b"psi-match-key-v1" + _lp(rule) + b"".join(_lp(p) for p in parts)


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES)
def test_committed_vectors_are_the_code(profile: Profile) -> None:
    assert FILES[profile.profile_id] == json.loads(json.dumps(gen.vectors(profile))), (
        "run .venv/bin/python -m tests.vectors.make_profile_vectors and review the diff")


@pytest.mark.parametrize("profile_id", PROFILES)
def test_every_key_has_the_documented_layout(profile_id: str) -> None:
    data = FILES[profile_id]
    keyed = [v for v in data["vectors"] if "keys" in v] + data["golden"]["records"]
    for item in keyed:
        hexes = [k["hex"] for k in item["keys"]]
        assert len(set(hexes)) == len(hexes)  # a record's keys are distinct
        for key in item["keys"]:
            assert _key(key["rule"], key["parts"]).hex() == key["hex"]


@pytest.mark.parametrize("profile_id", PROFILES)
def test_profile_hash_recomputed_from_the_documented_construction(profile_id: str) -> None:
    data = FILES[profile_id]
    golden = hashlib.sha256()
    for item in data["golden"]["records"]:
        keys = sorted(bytes.fromhex(k["hex"]) for k in item["keys"])
        golden.update(len(keys).to_bytes(2, "big") + b"".join(len(k).to_bytes(2, "big") + k for k in keys))
    assert golden.hexdigest() == data["golden"]["digest"]
    profile = PROFILES[profile_id]
    definition = {"golden": golden.hexdigest(), "key_domain": "psi-match-key-v1", "profile": profile_id,
                  "rules": [{"definition": r.definition, "id": r.rule_id, "strength": r.strength.value}
                            for r in profile.rules],
                  "versions": {"unicode": "14.0.0", **({"anyascii": "0.3.3", "name-words": "c31e7e595883741a"}
                                                       if profile_id == "standard/5" else {})}}
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    assert canonical == data["definition_json"]
    assert hashlib.sha256(canonical.encode()).hexdigest() == data["profile_hash"] == profile.definition_hash.hex()


def test_vectors_cover_every_rule_and_both_outcomes() -> None:
    for profile_id, data in FILES.items():
        rules = {k["rule"] for v in data["vectors"] for k in v.get("keys", [])}
        assert rules == {r.rule_id for r in PROFILES[profile_id].rules}
        assert any("error" in v for v in data["vectors"])
        assert any(v.get("warnings") for v in data["vectors"])


def test_profile_hash_catches_a_transliteration_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another anyascii table (here: Chinese read in Wade-Giles) gives another hash, so the nodes refuse."""
    monkeypatch.setattr("psi.normalize.anyascii", lambda text: anyascii(text).replace("Xiao", "Hsiao"))
    other = Profile(STANDARD_PROFILE.profile_id, STANDARD_PROFILE.rules, STANDARD_PROFILE.versions)
    assert other.definition_hash != STANDARD_PROFILE.definition_hash
    with pytest.raises(ParameterMismatchError, match="profile differs"):
        check_parameters(Parameters("node-b", "wanted", oprf.SUITE_ID, 1, 1, 0, 0, 8, STANDARD_PROFILE.profile_id,
                                    STANDARD_PROFILE.definition_hash, (Mode.INTERSECTION,), Limits()),
                         other, Mode.INTERSECTION)


def test_profile_hash_catches_a_unicode_version_difference() -> None:
    other = replace(EXACT_PROFILE, versions=(("unicode", "15.0.0"),))
    assert other.definition_hash != EXACT_PROFILE.definition_hash


def test_pinned_versions_are_the_installed_ones() -> None:
    """The doc's Unicode version is this Python's; anyascii is pinned exactly where it is installed from."""
    doc = (ROOT / "docs" / "matching.md").read_text()
    assert f"**Unicode version: {normalize.UNICODE_VERSION}**" in doc
    assert f"**Transliteration table: `anyascii` {normalize.ANYASCII_VERSION}**" in doc
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"anyascii=={normalize.ANYASCII_VERSION}" in deps
    assert f"anyascii=={normalize.ANYASCII_VERSION}" in (ROOT / "constraints.txt").read_text().split()


def test_matching_doc_tables_are_the_code() -> None:
    doc = (ROOT / "docs" / "matching.md").read_text()
    assert gen.doc_with_section(doc) == doc, "run .venv/bin/python -m tests.vectors.make_profile_vectors"


def test_protocol_doc_states_the_hash_construction() -> None:
    section: Any = re.search(r"^## 2\..*?(?=^## 3\.)", (ROOT / "docs" / "protocol.md").read_text(),
                             re.MULTILINE | re.DOTALL)
    assert section
    for profile in PROFILES.values():
        assert profile.definition_hash.hex() in section.group(0)
    assert '{"golden": <hex>, "key_domain": "psi-match-key-v1", "profile": <id>' in section.group(0)
