"""Tampering with an audit log is detected, named and refused; an intact log passes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from Crypto.PublicKey import ECC

from agency.audit.chain import Signer, Verifier
from agency.audit.export import export_case, verify_export
from agency.audit.log import AuditLog
from agency.audit.prune import prune_log
from agency.audit.verify import sidecar_path, verify_log
from psi.errors import AuditError, InputError

SIGNER = Signer(ECC.generate(curve="Ed25519"))
VERIFIER = Verifier(SIGNER.public_pem())


def _clock(start: dt.datetime) -> Callable[[], dt.datetime]:
    moments = iter(start + dt.timedelta(hours=i) for i in range(10_000))
    return lambda: next(moments)


def _log(tmp: Path, entries: int = 10, every: int = 4) -> Path:
    path = tmp / "audit.log"
    log = AuditLog(path, "node-b", SIGNER, checkpoint_every=every,
                   clock=_clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    for i in range(entries):
        log.append({"operation": "query.served", "partner": "agency-a", "case": f"C-{i % 3}", "n": i})
    log.close()
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _entry_line(path: Path, seq: int) -> int:
    for index, raw in enumerate(_lines(path)):
        obj = json.loads(raw)
        if obj["kind"] == "entry" and obj["seq"] == seq:
            return index
    raise AssertionError(seq)


def test_intact_log_verifies(tmp_path: Path) -> None:
    verdict = verify_log(_log(tmp_path), VERIFIER)
    assert verdict.intact and verdict.notes == ()
    assert verdict.state.next_seq == 10
    assert verdict.state.checkpoints == 3  # after 4, after 8, and on close


def test_flipped_byte_is_an_edit(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    index = _entry_line(path, 5)
    lines[index] = lines[index].replace(b'"n":5', b'"n":6')
    path.write_bytes(b"".join(lines))
    verdict = verify_log(path, VERIFIER)
    assert verdict.problem and verdict.problem.kind == "edited"
    assert "entry 5 " in verdict.problem.message


def test_flipped_byte_anywhere_is_detected(tmp_path: Path) -> None:
    """Anywhere but in a writer mac: only the node's writers can check those (tests/unit/test_audit_writers.py)."""
    path = _log(tmp_path)
    original = path.read_bytes()
    macs = {i for line in _lines(path) if b'"mac":"' in line
            for start in [original.index(line) + line.index(b'"mac":"') + 7] for i in range(start, start + 64)}
    for offset in range(0, len(original), 37):
        if offset in macs:
            continue
        damaged = bytearray(original)
        damaged[offset] ^= 0x01
        path.write_bytes(bytes(damaged))
        assert not verify_log(path, VERIFIER).intact, f"flip at byte {offset} went unnoticed"


def test_deleted_entry(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    del lines[_entry_line(path, 2)]
    path.write_bytes(b"".join(lines))
    verdict = verify_log(path, VERIFIER)
    assert verdict.problem and verdict.problem.kind == "deleted"
    assert "entry 2 deleted" in verdict.problem.message


def test_swapped_entries(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    a, b = _entry_line(path, 5), _entry_line(path, 6)
    lines[a], lines[b] = lines[b], lines[a]
    path.write_bytes(b"".join(lines))
    verdict = verify_log(path, VERIFIER)
    assert verdict.problem and verdict.problem.kind == "reordered"
    assert "entry 6" in verdict.problem.message


def test_truncation_before_the_last_checkpoint(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    path.write_bytes(b"".join(lines[:_entry_line(path, 7)]))
    verdict = verify_log(path, VERIFIER)
    assert verdict.problem and verdict.problem.kind == "truncated"
    assert "ends after 7 entries" in verdict.problem.message


def test_replaced_checkpoint_signature(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    index = next(i for i, raw in enumerate(lines) if b'"checkpoint"' in raw)
    obj = json.loads(lines[index])
    other = Signer(ECC.generate(curve="Ed25519")).sign(b"anything").hex()
    obj["signature"] = other
    lines[index] = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    verdict = verify_log(path, VERIFIER)
    assert verdict.problem and verdict.problem.kind == "bad-signature"
    assert "after entry 3" in verdict.problem.message


def test_wrong_public_key_fails(tmp_path: Path) -> None:
    other = Verifier(Signer(ECC.generate(curve="Ed25519")).public_pem())
    assert verify_log(_log(tmp_path), other).problem is not None


def test_torn_tail_verifies_up_to_last_entry_and_is_repaired(tmp_path: Path) -> None:
    path = _log(tmp_path)
    with path.open("ab") as handle:
        handle.write(b'{"kind":"entry","seq":10,"prev":"ab')  # a crash mid-write
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact
    assert any("torn tail" in w for w in verdict.notes)
    log = AuditLog(path, "node-b", SIGNER)  # restarting repairs and records the repair
    log.append({"operation": "query.served"})
    log.close()
    repaired = verify_log(path, VERIFIER)
    assert repaired.intact and repaired.notes == ()
    assert [b["operation"] for _, b in repaired.state.entries][-2:] == ["log.recovered", "query.served"]


def test_writer_refuses_a_tampered_log(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    del lines[_entry_line(path, 1)]
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditError, match="fails verification"):
        AuditLog(path, "node-b", SIGNER)


def test_unwritable_log_fails_closed(tmp_path: Path) -> None:
    path = _log(tmp_path)
    log = AuditLog(path, "node-b", SIGNER)
    path.unlink()
    path.mkdir()  # the log can no longer be written, even by root
    with pytest.raises(AuditError, match=r"audit log .*(Is a directory|nothing was written)"):
        log.append({"operation": "query.served"})


def test_export_of_a_case_proves_membership(tmp_path: Path) -> None:
    path = _log(tmp_path)
    bundle = export_case(path, VERIFIER, "C-1")
    assert [i["seq"] for i in bundle["items"] if "body" in i] == [1, 4, 7]
    assert all("body" not in i or i["body"]["case"] == "C-1" for i in bundle["items"])
    assert "3 entries of case C-1" in verify_export(bundle, VERIFIER)
    bundle["items"][0]["body"]["n"] = 99
    with pytest.raises(InputError, match="do not hash"):
        verify_export(bundle, VERIFIER)


def test_prune_keeps_the_rest_verifiable_and_logs_itself(tmp_path: Path) -> None:
    path = _log(tmp_path)  # entry i is at 2026-01-01T00:00 + i hours (one per clock tick)
    result = prune_log(path, SIGNER, "node-b", dt.date(2026, 1, 1), "dpo-1",
                       clock=_clock(dt.datetime(2026, 1, 2, tzinfo=dt.UTC)))
    assert result.pruned == 0  # nothing older; the attempt itself is logged (entry 10)
    log = AuditLog(path, "node-b", SIGNER, clock=_clock(dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))
    log.append({"operation": "query.served", "case": "C-late"})
    log.close()
    result = prune_log(path, SIGNER, "node-b", dt.date(2026, 2, 1), "dpo-1")
    assert (result.pruned, result.first_kept_seq) == (11, 11)
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact, verdict.problem
    operations = [b["operation"] for _, b in verdict.state.entries]
    assert operations == ["query.served", "log.pruned"]
    pruned = verdict.state.entries[-1][1]
    assert (pruned["operator"], pruned["pruned_entries"], pruned["cut_at_checkpoint"]) == ("dpo-1", 11, 11)
    assert any("entries before 11 were removed" in note for note in verdict.notes)
    assert "1 entries of case C-late" in verify_export(export_case(path, VERIFIER, "C-late"), VERIFIER)
    AuditLog(path, "node-b", SIGNER).append({"operation": "after-prune"})  # writers continue the chain
    assert verify_log(path, VERIFIER).intact


def test_checkpoint_file_is_written(tmp_path: Path) -> None:
    path = _log(tmp_path)
    side = json.loads(sidecar_path(path).read_bytes())
    assert side["count"] == 10
