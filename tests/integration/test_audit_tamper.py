"""The tamper suite (issue 13): each way an insider with file access would rewrite a log is caught.

Every case tampers with a copy of a real log as an insider would (with or
without the node's signing key), then runs `psi audit verify` with the
officer's pinned key: the exit is non-zero and the output names the entry or
checkpoint. Where a normal command would otherwise sign over the tampering,
the case also runs one and checks it refuses and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from Crypto.PublicKey import ECC

from agency.audit.chain import Signer, canonical, chain_hash, checkpoint_line, entry_digest, fingerprint
from agency.audit.log import AuditLog, timestamp
from agency.audit.verify import sidecar_path
from agency.audit.witness import Checkpoint, cosign, state_path
from cli.main import main
from psi.errors import AuditError

KEY = Signer(ECC.generate(curve="Ed25519"))  # the node's audit key
OTHER_KEY = Signer(ECC.generate(curve="Ed25519"))  # an insider's own key
WITNESS = Signer(ECC.generate(curve="Ed25519"))  # the partner's audit key
START = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)  # the log was written in the past, a minute apart


def _clock(start: dt.datetime, step: dt.timedelta = dt.timedelta(minutes=1)) -> Callable[[], dt.datetime]:
    moments = iter(start + step * i for i in range(100_000))
    return lambda: next(moments)


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """agency-b's log (10 entries, checkpoints every 4 and at close) and the officer's pinned public key."""
    log = tmp_path / "data" / "audit.log"
    writer = AuditLog(log, "agency-b", KEY, checkpoint_every=4, clock=_clock(START), timer=False)
    for i in range(10):
        writer.append({"operation": "query.served", "partner": "agency-a", "case": f"C-{i % 3}", "n": i,
                       "request_id": f"r{i}"})
    writer.close()
    (tmp_path / "officer").mkdir()
    (tmp_path / "officer" / "agency-b.pub.pem").write_text(KEY.public_pem())
    return log


def _verify(log: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "verify", str(log), "--public-key", str(log.parents[1] / "officer" / "agency-b.pub.pem"),
                 *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_bytes().splitlines()]


def _write(log: Path, lines: list[dict[str, Any]]) -> None:
    log.write_bytes(b"".join(canonical(obj) + b"\n" for obj in lines))


def _rechain(lines: list[dict[str, Any]], signer: Signer | None = None, mac: Signer = KEY) -> list[dict[str, Any]]:
    """Recompute every hash (and macs with `mac`); with `signer`, re-sign every checkpoint too (an insider
    holding that key); without, checkpoints are kept as they were."""
    head, out = bytes(32), []
    for line in lines:
        obj = line
        if line["kind"] == "entry":
            prev, head = head, chain_hash(head, entry_digest(line["seq"], line["body"]))
            obj = {**line, "prev": prev.hex(), "hash": head.hex(), "mac": mac.mac(head)}
        elif signer is not None:
            obj = json.loads(checkpoint_line(line["count"], head, line["time"], signer))
        out.append(obj)
    return out


def _resign_sidecar(log: Path, lines: list[dict[str, Any]]) -> None:
    last = [o for o in lines if o["kind"] == "checkpoint"][-1]
    sidecar_path(log).write_bytes(canonical(last) + b"\n")


def _entry_index(lines: list[dict[str, Any]], seq: int) -> int:
    return next(i for i, o in enumerate(lines) if o["kind"] == "entry" and o["seq"] == seq)


def test_an_untouched_log_verifies(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _verify(node, capsys)
    assert code == 0 and "intact: 10 entries" in out


def test_truncated_log(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(node)
    _write(node, lines[:_entry_index(lines, 7)])
    code, out = _verify(node, capsys)
    assert code == 1 and "truncated" in out and "covers 10" in out


def test_truncated_log_without_its_checkpoint_file(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(node)
    _write(node, lines[:_entry_index(lines, 7)])
    sidecar_path(node).unlink()
    code, out = _verify(node, capsys)
    assert code == 1 and "missing-checkpoint" in out and "audit.log.checkpoint is missing" in out
    with pytest.raises(AuditError, match=r"checkpoint file .* is missing"):  # and no writer carries on
        AuditLog(node, "agency-b", KEY)


def test_rollback_with_an_older_checkpoint_is_caught_by_the_witness(node: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _witness(node, tmp_path)
    lines = _lines(node)
    cut = next(i for i, o in enumerate(lines) if o["kind"] == "checkpoint" and o["count"] == 8)
    _write(node, lines[:cut + 1])  # back to the signed state over 8 entries, its checkpoint file too
    sidecar_path(node).write_bytes(canonical(lines[cut]) + b"\n")
    assert _verify(node, capsys)[0] == 0  # alone, a consistent older signed state cannot be told apart
    code, out = _verify(node, capsys, "--witness", str(bundle))
    assert code == 1 and "rolled back" in out and "agency-a cosigned this log at 10 entries" in out


def test_resigned_with_a_new_key(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _rechain(_lines(node), OTHER_KEY)
    _write(node, lines)
    _resign_sidecar(node, lines)
    code, out = _verify(node, capsys)
    assert code == 1 and "bad-signature" in out and "checkpoint at line 5 (after entry 3)" in out


def test_key_swapped_beside_the_log(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _rechain(_lines(node), OTHER_KEY)
    _write(node, lines)
    _resign_sidecar(node, lines)
    beside = node.parent / "audit-signing.pub.pem"
    beside.write_text(OTHER_KEY.public_pem())
    capsys.readouterr()
    assert main(["audit", "verify", str(node), "--public-key", str(beside)]) != 0
    assert "lies beside the log" in capsys.readouterr().err
    assert main(["audit", "verify", str(node), "--public-key", str(beside),
                 "--fingerprint", fingerprint(KEY.public_pem())]) != 0
    assert "officer recorded (swapped?)" in capsys.readouterr().err


def test_entry_moved_from_another_node(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(node)
    index = _entry_index(lines, 5)
    lines[index]["body"] = {**lines[index]["body"], "node": "agency-a"}  # agency-a's entry, carried over
    lines = _rechain(lines, KEY)  # by an insider holding agency-b's key
    _write(node, lines)
    _resign_sidecar(node, lines)
    code, out = _verify(node, capsys)
    assert code == 1 and "foreign" in out and "entry 5 (line 7) was written by node 'agency-a'" in out


def test_rechained_edit_without_the_key(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(node)
    lines[_entry_index(lines, 2)]["body"]["case"] = "C-9"
    _write(node, _rechain(lines))
    code, out = _verify(node, capsys)
    assert code == 1 and "checkpoint at line 5 does not match the chain" in out


def test_duplicate_checkpoint(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(node)
    cut = next(i for i, o in enumerate(lines) if o["kind"] == "checkpoint")
    _write(node, [*lines[:cut + 1], lines[cut], *lines[cut + 1:]])
    code, out = _verify(node, capsys)
    assert code == 1 and "duplicate-checkpoint" in out and "checkpoint at line 6" in out


def test_time_going_backwards(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(node)
    lines[_entry_index(lines, 6)]["body"]["time"] = timestamp(START - dt.timedelta(days=30))
    lines = _rechain(lines, KEY)  # even with the key: a back-dated entry sits after later ones
    _write(node, lines)
    _resign_sidecar(node, lines)
    code, out = _verify(node, capsys)
    assert code == 1 and "time-reversed" in out and "entry 6 (line 8)" in out


def test_lookalike_edit(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(node)
    lines[_entry_index(lines, 1)]["body"]["case"] = "\u0421-1"  # Cyrillic Es: reads as "C-1"
    _write(node, lines)
    code, out = _verify(node, capsys)
    assert code == 1 and "entry 1 (line 2) was edited" in out


def test_non_canonical_bytes(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = node.read_bytes().splitlines(keepends=True)
    raw[2] = raw[2].replace(b'"kind":"entry"', b'"kind":"entry","kind":"entry"')  # duplicate key, same value
    node.write_bytes(b"".join(raw))
    code, out = _verify(node, capsys)
    assert code == 1 and "line 3 is not a valid audit line" in out
    raw[2] = raw[2].replace(b'"kind":"entry","kind":"entry"', b'"kind": "entry"')
    node.write_bytes(b"".join(raw))
    code, out = _verify(node, capsys)
    assert code == 1 and "non-canonical" in out and "line 3 (entry 2)" in out


def test_appended_forgery_then_a_normal_command(node: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(node)
    last = [o for o in lines if o["kind"] == "entry"][-1]
    body = {**last["body"], "time": timestamp(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)), "n": 99}
    forged = _rechain([*lines, {"kind": "entry", "seq": 10, "prev": "", "body": body, "hash": ""}], mac=OTHER_KEY)
    _write(node, forged)
    before = node.read_bytes()
    with pytest.raises(AuditError, match=r"entry 10 .* not written by this node"):
        AuditLog(node, "agency-b", KEY).append({"operation": "watchlist.erase"})
    assert node.read_bytes() == before  # nothing signed over it
    code, out = _verify(node, capsys)
    assert code == 1 and "unsigned" in out and "entry 10 unsigned since" in out


def test_prune_over_a_dated_forgery(node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agency.audit.prune import prune_log  # noqa: PLC0415

    lines = _lines(node)
    last = [o for o in lines if o["kind"] == "entry"][-1]
    body = {**last["body"], "time": timestamp(START - dt.timedelta(days=400)), "operation": "query.made"}
    _write(node, _rechain([*lines, {"kind": "entry", "seq": 10, "prev": "", "body": body, "hash": ""}]))
    before = node.read_bytes()
    with pytest.raises(Exception, match=r"entry 10 .* time went backwards"):
        prune_log(node, KEY, "agency-b", dt.date.today(), "dpo")
    assert node.read_bytes() == before
    code, out = _verify(node, capsys)
    assert code == 1 and "entry 10 (line 14)" in out


def test_deletion_inside_the_unsigned_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "data" / "audit.log"
    writer = AuditLog(log, "agency-b", KEY, checkpoint_every=4, clock=_clock(START), timer=False)
    for i in range(7):  # 0-3 signed; 4-6 unsigned: the writer died before its timer fired
        writer.append({"operation": "query.served", "n": i})
    (tmp_path / "officer").mkdir()
    (tmp_path / "officer" / "agency-b.pub.pem").write_text(KEY.public_pem())
    lines = _lines(log)
    del lines[_entry_index(lines, 5)]
    for obj in lines:
        if obj["kind"] == "entry" and obj["seq"] == 6:
            obj["seq"] = 5
    _write(log, _rechain(lines, mac=OTHER_KEY))
    before = log.read_bytes()
    with pytest.raises(AuditError, match=r"entry 4 .* not written by this node"):
        AuditLog(log, "agency-b", KEY)  # a restarted writer does not sign it
    assert log.read_bytes() == before
    code, out = _verify(log, capsys)
    assert code == 1 and "entries 4 to 5 unsigned since" in out


def test_complete_rewrite_caught_by_the_witness(node: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _witness(node, tmp_path)
    lines = _lines(node)
    for obj in lines:
        if obj["kind"] == "entry":
            obj["body"]["case"] = "C-0"  # every case rewritten, the whole log re-signed with the node's key
    lines = _rechain(lines, KEY)
    _write(node, lines)
    _resign_sidecar(node, lines)
    assert _verify(node, capsys)[0] == 0  # the key holder's rewrite is self-consistent
    code, out = _verify(node, capsys, "--witness", str(bundle))
    assert code == 1 and "rewritten: entry 9 differs from the one witness agency-a cosigned" in out


def _witness(log: Path, tmp_path: Path) -> Path:
    """agency-a cosigns agency-b's latest checkpoint, as over gRPC (tests/integration/test_audit_witness.py)."""
    side = json.loads(sidecar_path(log).read_bytes())
    checkpoint = Checkpoint(side["count"], bytes.fromhex(side["head"]), side["time"], side["signature"])
    cosign(tmp_path / "data-a", "agency-a", WITNESS, "agency-b", KEY.public_pem(), checkpoint, 0, [],
           lambda: dt.datetime.now(dt.UTC))
    return state_path(tmp_path / "data-a", "agency-b")
