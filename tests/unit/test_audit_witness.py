"""A witness cosigns only checkpoints that extend what it cosigned before, with the key it pinned."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest
from Crypto.PublicKey import ECC

from agency.audit.chain import GENESIS, Signer, Verifier, chain_hash, checkpoint_message, entry_digest
from agency.audit.verify import Witnessed
from agency.audit.witness import Checkpoint, ConflictError, cosign, read_bundle, state_path
from psi.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
NODE, OTHER, WITNESS = (Signer(ECC.generate(curve="Ed25519")) for _ in range(3))


def _now() -> dt.datetime:
    return dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _chain(bodies: list[dict[str, object]]) -> tuple[list[bytes], bytes]:
    digests = [entry_digest(seq, body) for seq, body in enumerate(bodies)]
    head = GENESIS
    for digest in digests:
        head = chain_hash(head, digest)
    return digests, head


def _checkpoint(count: int, head: bytes, signer: Signer = NODE) -> Checkpoint:
    time = "2026-06-01T00:00:00.000000Z"
    return Checkpoint(count, head, time, signer.sign(checkpoint_message(count, head, time)).hex())


def test_append_only_and_its_refusals(tmp_path: Path) -> None:
    bodies: list[dict[str, object]] = [{"n": i} for i in range(6)]
    _, head4 = _chain(bodies[:4])
    digests, head6 = _chain(bodies)
    key = NODE.public_pem()
    cosign(tmp_path, "agency-b", WITNESS, "agency-a", key, _checkpoint(4, head4), 4, [], _now)  # first contact
    with pytest.raises(ConflictError) as conflict:
        cosign(tmp_path, "agency-b", WITNESS, "agency-a", key, _checkpoint(6, head6), 6, [], _now)
    assert conflict.value.known_size == 4
    with pytest.raises(InputError, match="fork"):
        cosign(tmp_path, "agency-b", WITNESS, "agency-a", key, _checkpoint(6, head6), 4, digests[:2], _now)
    cosign(tmp_path, "agency-b", WITNESS, "agency-a", key, _checkpoint(6, head6), 4, digests[4:], _now)
    with pytest.raises(InputError, match="rollback"):
        cosign(tmp_path, "agency-b", WITNESS, "agency-a", key, _checkpoint(4, head4), 4, [], _now)
    with pytest.raises(InputError, match="not the pinned"):
        cosign(tmp_path, "agency-b", WITNESS, "agency-a", OTHER.public_pem(), _checkpoint(6, head6, OTHER), 6, [],
               _now)
    with pytest.raises(InputError, match="bad signature"):
        cosign(tmp_path, "agency-b", WITNESS, "agency-a", key, _checkpoint(6, head6, OTHER), 6, [], _now)
    seen = read_bundle(state_path(tmp_path, "agency-a"), Verifier(key), WITNESS.public_pem())
    assert seen == Witnessed("agency-b", 6, head6, "2026-06-01T00:00:00+00:00")
    with pytest.raises(InputError, match="not the witness key given"):
        read_bundle(state_path(tmp_path, "agency-a"), Verifier(key), OTHER.public_pem())


def test_generated_witness_wire_code_is_up_to_date(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(tmp_path)
    for name in module.outputs("witness"):
        assert (tmp_path / name).read_text() == (ROOT / "psiwire" / name).read_text(), f"run `make protos` ({name})"
