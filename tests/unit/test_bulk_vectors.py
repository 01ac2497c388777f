"""The bulk-mode transcript in tests/vectors/ replayed on both kernels, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psi import bulk
from psi import bulk_kernels as bk
from tests.vectors.make_bulk_vectors import transcript

VECTOR = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "bulk-transcript.json").read_text())
NATIVE = bk.load_native()


@pytest.mark.parametrize("kernels", [
    pytest.param(bk.PYTHON, id="python"),
    pytest.param(NATIVE, id="native", marks=pytest.mark.skipif(NATIVE is None, reason="psi_native not built")),
])
def test_transcript_replays(kernels: bk.Kernels) -> None:
    assert VECTOR["suite"] == bulk.SUITE
    t = transcript(kernels, [bytes.fromhex(k) for k in VECTOR["receiver_keys"]],
                   [bytes.fromhex(k) for k in VECTOR["sender_keys"]],
                   [bytes.fromhex(p) for p in VECTOR["sender_payloads"]], VECTOR["max_chunk_bytes"])
    assert t["hello"].hex() == VECTOR["hello"]
    assert t["setup"].hex() == VECTOR["setup"]
    assert [c.hex() for c in t["corrections"]] == VECTOR["corrections"]
    assert [r.hex() for r in t["results"]] == VECTOR["results"]
    assert [[i, p.hex()] for i, p in t["hits"]] == VECTOR["hits"]
    assert bulk.announced_items(t["hello"]) == len(set(VECTOR["receiver_keys"]))  # equal keys are one item
