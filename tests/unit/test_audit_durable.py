"""A full disk never leaves a partial line or file: the write is undone and the error says so."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from Crypto.PublicKey import ECC

from agency.audit.chain import Signer, Verifier
from agency.audit.log import AuditLog, head_path
from agency.audit.verify import sidecar_path, verify_log
from agency.keys import ServerKey, _create_private, replace_key
from psi import oprf
from psi.errors import AuditError, ConfigurationError

SIGNER = Signer(ECC.generate(curve="Ed25519"))
VERIFIER = Verifier(SIGNER.public_pem())


def disk_full(monkeypatch: pytest.MonkeyPatch, suffix: str, prefix: int = 7) -> Callable[[], int]:
    """os.write on files whose name ends with `suffix` writes `prefix` bytes, then fails with ENOSPC."""
    real = os.write
    failures = 0

    def write(fd: int, data: bytes) -> int:
        nonlocal failures
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(suffix):
            return real(fd, data)
        failures += 1
        if failures == 1:
            return real(fd, bytes(data[:prefix]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)
    return lambda: failures


def _log(path: Path, entries: int = 5) -> AuditLog:
    log = AuditLog(path, "node-b", SIGNER, checkpoint_every=4)
    for i in range(entries):
        log.append({"operation": "query.served", "n": i})
    return log


def test_disk_full_on_append_leaves_the_log_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.log"
    log = _log(path)
    before = path.read_bytes()
    failures = disk_full(monkeypatch, "audit.log")
    with pytest.raises(AuditError, match=r"no space left on device writing the audit log .*nothing was written"):
        log.append({"operation": "query.served", "n": "lost"})
    assert failures() == 2  # a short write, then the error
    assert path.read_bytes() == before
    assert verify_log(path, VERIFIER).intact
    monkeypatch.undo()
    log.append({"operation": "query.served", "n": "next"})
    log.close()
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact and verdict.notes == ()
    assert [body["n"] for _, body in verdict.state.entries] == [0, 1, 2, 3, 4, "next"]


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.log"
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:5])))
    _log(path, 6).close()
    monkeypatch.undo()
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact and verdict.notes == () and verdict.state.next_seq == 6


@pytest.mark.parametrize("suffix", [".checkpoint.tmp", ".head.tmp"])
def test_disk_full_on_a_sidecar_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  suffix: str) -> None:
    path = tmp_path / "audit.log"
    log = _log(path, 5)  # a checkpoint after 4
    side = path.with_name(path.name + suffix.removesuffix(".tmp"))
    before = side.read_bytes()
    disk_full(monkeypatch, suffix)
    with pytest.raises(AuditError, match=rf"no space left on device writing the audit .* {side}; free space"):
        log.checkpoint()
    assert side.read_bytes() == before
    assert not side.with_name(side.name + ".tmp").exists()
    assert verify_log(path, VERIFIER).intact
    monkeypatch.undo()
    log.append({"operation": "query.served", "n": "next"})
    log.close()
    assert json.loads(sidecar_path(path).read_bytes())["count"] == 6
    assert json.loads(head_path(path).read_bytes())["offset"] == path.stat().st_size
    assert verify_log(path, VERIFIER).intact


def test_a_partial_line_that_cannot_be_removed_is_repaired_later(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.log"
    log = _log(path)
    disk_full(monkeypatch, "audit.log")
    monkeypatch.setattr(os, "ftruncate", lambda fd, size: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(AuditError, match="removed as a torn tail"):
        log.append({"operation": "query.served", "n": "lost"})
    monkeypatch.undo()
    assert verify_log(path, VERIFIER).state.torn_tail_bytes == 7
    log.append({"operation": "query.served", "n": "next"})
    log.close()
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact and verdict.notes == ()
    assert [body["operation"] for _, body in verdict.state.entries][-2:] == ["log.recovered", "query.served"]


def test_disk_full_creating_a_key_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys" / "oprf.key"
    disk_full(monkeypatch, "oprf.key")
    with pytest.raises(ConfigurationError, match=r"no space left on device writing the key file .*oprf.key"):
        _create_private(path, "secret" * 100)
    assert not path.exists()


def test_disk_full_replacing_a_key_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "oprf.key"
    replace_key(path, ServerKey(1, oprf.generate_key()))
    before = path.read_bytes()
    disk_full(monkeypatch, "oprf.key.new")
    with pytest.raises(ConfigurationError, match="no space left on device"):
        replace_key(path, ServerKey(2, oprf.generate_key()))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oprf.key"]
