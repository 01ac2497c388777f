"""Intent and outcome entries pair up by op id; open intents survive restarts and are reported by verify."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from Crypto.PublicKey import ECC

from agency.audit.chain import Signer, Verifier
from agency.audit.log import AuditLog, head_path
from agency.audit.prune import prune_log
from agency.audit.verify import verify_log
from psi.errors import AuditError

SIGNER = Signer(ECC.generate(curve="Ed25519"))
VERIFIER = Verifier(SIGNER.public_pem())


def _clock(start: dt.datetime) -> Callable[[], dt.datetime]:
    moments = iter(start + dt.timedelta(days=i) for i in range(10_000))
    return lambda: next(moments)


def test_intent_then_outcome(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", "node-b", SIGNER)
    op = log.intent({"operation": "watchlist.import", "list": "wanted"})
    assert len(op) == 32 and int(op, 16) >= 0
    assert log.open_intents() == {op: {"time": log.open_intents()[op]["time"], "node": "node-b",
                                       "operation": "watchlist.import", "list": "wanted",
                                       "phase": "intent", "op": op}}
    log.outcome(op, {"operation": "watchlist.import", "records": 3}, outcome="failed")
    assert log.open_intents() == {}
    log.close()
    verdict = verify_log(tmp_path / "audit.log", VERIFIER)
    assert verdict.intact and verdict.open_intents == {}
    last = verdict.state.entries[-1][1]
    assert (last["phase"], last["op"], last["outcome"], last["records"]) == ("outcome", op, "failed", 3)


def test_outcome_for_an_unknown_or_closed_op_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, "node-b", SIGNER)
    op = log.intent({"operation": "key.rotate"})
    log.outcome(op, {"operation": "key.rotate"})
    size = path.stat().st_size
    with pytest.raises(AuditError, match="no open intent"):
        log.outcome(op, {"operation": "key.rotate"})
    with pytest.raises(AuditError, match="no open intent"):
        log.outcome("f" * 32, {"operation": "key.rotate"})
    assert path.stat().st_size == size


def test_intents_of_other_processes_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    server, importer = AuditLog(path, "node-b", SIGNER), AuditLog(path, "node-b", SIGNER)
    op = importer.intent({"operation": "watchlist.import"})
    assert set(server.open_intents()) == {op}
    server.outcome(op, {"operation": "watchlist.import"}, outcome="abandoned")
    with pytest.raises(AuditError, match="no open intent"):
        importer.outcome(op, {"operation": "watchlist.import"})


@pytest.mark.parametrize("with_head", [True, False])
def test_open_intents_survive_a_restart(tmp_path: Path, with_head: bool) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, "node-b", SIGNER, checkpoint_every=3)
    ops = [log.intent({"operation": "match", "n": i}) for i in range(5)]
    log.outcome(ops[1], {"operation": "match"})
    log.append({"operation": "query.served"})  # after the last head: found by the catch-up
    if not with_head:
        head_path(path).unlink()
    reopened = AuditLog(path, "node-b", SIGNER)
    assert sorted(reopened.open_intents()) == sorted(ops[:1] + ops[2:])
    assert reopened.open_intents()[ops[4]]["n"] == 4
    reopened.close()
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact and verdict.notes == ()  # information, not a warning
    assert verdict.open_intents == reopened.open_intents()


def test_prune_keeps_entries_from_the_oldest_open_intent(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, "node-b", SIGNER, clock=_clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    for i in range(3):
        log.append({"operation": "query.served", "n": i})  # days 1-3
    op = log.intent({"operation": "match"})  # day 4, never concluded
    log.append({"operation": "query.served", "n": 3})
    log.close()
    result = prune_log(path, SIGNER, "node-b", dt.date(2026, 2, 1), "dpo-1")
    assert (result.pruned, result.first_kept_seq) == (3, 3)
    verdict = verify_log(path, VERIFIER)
    assert verdict.intact and set(verdict.open_intents) == {op}
    reopened = AuditLog(path, "node-b", SIGNER)
    reopened.outcome(op, {"operation": "match"}, outcome="abandoned")
    reopened.close()
    assert verify_log(path, VERIFIER).open_intents == {}
