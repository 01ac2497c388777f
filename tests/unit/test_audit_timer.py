"""Unsigned entries are signed once the oldest is `checkpoint_seconds` old, not only every N entries."""

from __future__ import annotations

import json
import time
from pathlib import Path

from Crypto.PublicKey import ECC

from agency.audit.chain import Signer, Verifier
from agency.audit.log import AuditLog
from agency.audit.verify import sidecar_path, verify_log

SIGNER = Signer(ECC.generate(curve="Ed25519"))
VERIFIER = Verifier(SIGNER.public_pem())


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _signed(path: Path) -> int:
    count: int = json.loads(sidecar_path(path).read_bytes())["count"] if sidecar_path(path).exists() else 0
    return count


def test_sign_if_due_waits_for_the_oldest_pending_entry(tmp_path: Path) -> None:
    path, now = tmp_path / "audit.log", FakeMonotonic()
    log = AuditLog(path, "node-b", SIGNER, checkpoint_seconds=10, monotonic=now, timer=False)
    assert not log.sign_if_due()  # nothing pending
    log.append({"operation": "a"})
    now.now += 6
    log.append({"operation": "b"})  # the clock runs from the oldest pending entry
    now.now += 3.9
    assert not log.sign_if_due()
    now.now += 0.1
    assert log.sign_if_due()
    assert _signed(path) == 2
    now.now += 60
    assert not log.sign_if_due()  # signed: nothing pending
    log.append({"operation": "c"})
    now.now += 10
    assert log.sign_if_due() and _signed(path) == 3
    log.close()
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact and verdict.notes == () and verdict.state.checkpoints == 2


def test_entries_another_process_left_unsigned_are_signed_in_time(tmp_path: Path) -> None:
    path, now = tmp_path / "audit.log", FakeMonotonic()
    AuditLog(path, "node-b", SIGNER).append({"operation": "crashed before close"})
    log = AuditLog(path, "node-b", SIGNER, checkpoint_seconds=10, monotonic=now, timer=False)
    now.now += 10
    assert log.sign_if_due() and _signed(path) == 1
    log.close()


def test_the_timer_thread_signs_and_close_stops_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, "node-b", SIGNER, checkpoint_seconds=0.2)
    log.append({"operation": "a"})
    deadline = time.monotonic() + 5
    while _signed(path) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _signed(path) == 1
    log.append({"operation": "b"})
    log.close()  # stops the timer and signs what is pending
    assert _signed(path) == 2
    assert log._timer is not None and not log._timer.is_alive()
    assert verify_log(path, VERIFIER).intact
