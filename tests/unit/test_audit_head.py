"""Writers verify only what is new since the verified head `LOG.head`; anything doubtful means a full check."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from Crypto.PublicKey import ECC

from agency.audit import log as log_module
from agency.audit import verify as verify_module
from agency.audit.chain import Signer, Verifier
from agency.audit.log import AuditLog, head_path
from agency.audit.prune import prune_log
from agency.audit.verify import LogState, verify_log
from psi.errors import AuditError

SIGNER = Signer(ECC.generate(curve="Ed25519"))
VERIFIER = Verifier(SIGNER.public_pem())


def _write(path: Path, entries: int, every: int = 10) -> AuditLog:
    log = AuditLog(path, "node-b", SIGNER, checkpoint_every=every)
    for i in range(entries):
        log.append({"operation": "query.served", "n": i})
    return log


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes each writer-side scan was given, and where it started."""
    starts: list[int] = []
    real = verify_module.scan

    def spy(data: bytes, verifier: Verifier | None = None, keep_hashes: bool = False, *,
            resume: LogState | None = None, **options: Any) -> LogState:
        if data:
            starts.append(resume.valid_bytes if resume else 0)
        return real(data, verifier, keep_hashes, resume=resume, **options)

    monkeypatch.setattr(log_module, "scan", spy)
    return starts


def _head(path: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads(head_path(path).read_bytes())
    return doc


def test_head_records_the_verified_end(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 25).close()
    head = _head(path)
    assert head["offset"] == path.stat().st_size and head["inode"] == path.stat().st_ino
    assert (head["next_seq"], head["last_checkpoint_count"], head["lines"]) == (25, 25, 28)
    assert head["open_intents"] == {}
    last = path.read_bytes().splitlines()[-1]
    assert head["last_line"] == path.stat().st_size - len(last) - 1


def test_a_writer_verifies_only_the_bytes_after_the_head(tmp_path: Path, scanned: list[int]) -> None:
    path = tmp_path / "audit.log"
    _write(path, 500).close()
    verified = path.stat().st_size
    other = _write(path, 3)  # another process: three entries, not yet signed
    scanned.clear()
    log = AuditLog(path, "node-b", SIGNER, checkpoint_every=10)
    assert scanned and min(scanned) == verified
    scanned.clear()
    other.append({"operation": "query.served", "n": "late"})
    log.append({"operation": "query.served", "n": "mine"})  # catches up with one line only
    assert scanned and min(scanned) > verified
    log.close()
    other.close()
    assert verify_log(path, VERIFIER).intact


def test_missing_head_means_a_full_verification_and_a_new_head(tmp_path: Path, scanned: list[int]) -> None:
    path = tmp_path / "audit.log"
    _write(path, 30).close()
    before = _head(path)
    head_path(path).unlink()
    scanned.clear()
    AuditLog(path, "node-b", SIGNER)
    assert scanned[0] == 0
    assert _head(path) == before


@pytest.mark.parametrize("damage", ["head", "offset", "garbage", "inode", "last_line"])
def test_a_head_that_does_not_match_is_not_trusted(tmp_path: Path, scanned: list[int], damage: str) -> None:
    path = tmp_path / "audit.log"
    _write(path, 30).close()
    head = _head(path)
    if damage == "head":
        head["head"] = "00" * 32
    elif damage == "offset":
        head["offset"] = path.stat().st_size + 10
    elif damage == "inode":
        head["inode"] = path.stat().st_ino + 1
    elif damage == "last_line":
        head["last_line"] = int(str(head["last_line"])) + 1
    head_path(path).write_text("{not json" if damage == "garbage" else json.dumps(head))
    scanned.clear()
    log = AuditLog(path, "node-b", SIGNER)
    assert scanned[0] == 0  # verified from the start
    log.append({"operation": "after"})
    log.close()
    assert verify_log(path, VERIFIER).intact


def test_an_edited_last_line_is_noticed_by_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 30).close()
    data = bytearray(path.read_bytes())
    at = data.rindex(b'"signature":"') + len('"signature":"')
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    path.write_bytes(bytes(data))  # same inode, same length
    with pytest.raises(AuditError, match="bad signature"):
        AuditLog(path, "node-b", SIGNER)


def test_a_replaced_log_is_verified_in_full(tmp_path: Path, scanned: list[int]) -> None:
    path = tmp_path / "audit.log"
    _write(path, 30).close()
    copy = tmp_path / "copy"
    shutil.copy(path, copy)
    copy.replace(path)  # a restore from backup: another inode
    scanned.clear()
    AuditLog(path, "node-b", SIGNER).append({"operation": "after"})
    assert scanned[0] == 0


def test_verify_never_trusts_the_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 30).close()
    path.write_bytes(path.read_bytes().replace(b'"n":3,', b'"n":4,', 1))  # an old entry, same length
    assert AuditLog(path, "node-b", SIGNER)  # the writer's cache does not re-read old lines
    verdict = verify_log(path, VERIFIER)
    assert verdict.problem and verdict.problem.kind == "edited"


def test_writers_in_turn_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    a, b = _write(path, 0, every=7), _write(path, 0, every=7)
    for i in range(40):
        (a if i % 3 else b).append({"operation": "query.served", "n": i})
    a.close()
    b.close()
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact and verdict.notes == ()
    assert [body["n"] for _, body in verdict.state.entries] == list(range(40))
    assert _head(path)["offset"] == path.stat().st_size


def test_prune_rewrites_the_head(tmp_path: Path, scanned: list[int]) -> None:
    path = tmp_path / "audit.log"
    log = _write(path, 20)  # stays open across the prune, as a server would
    prune_log(path, SIGNER, "node-b", dt.date.today() + dt.timedelta(days=1), "dpo-1")
    head = _head(path)
    assert head["inode"] == path.stat().st_ino and head["offset"] == path.stat().st_size
    scanned.clear()
    log.append({"operation": "after-prune"})  # the log was replaced: its new head is trusted
    assert scanned == []  # nothing after that head to verify
    log.close()
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact
    assert [body["operation"] for _, body in verdict.state.entries] == ["log.pruned", "after-prune"]
