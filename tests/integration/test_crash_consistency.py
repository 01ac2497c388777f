"""Kill each writer at its critical points; after a restart the store and the audit log agree.

Each case runs the writer in a subprocess with PSI_CRASH_AT naming one crash
point (agency/faults.py): the process SIGKILLs itself there. The test then
opens the node as `psi serve` would (which reconciles) and checks: the log
verifies, every intent has an outcome that matches the store, the list is
what the outcome says, budgets equal the elements evaluated, and no worker
process outlives its parent.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
import rbcl

from agency.audit.chain import Verifier
from agency.audit.verify import verify_log
from agency.config import NodeConfig
from agency.keys import load_key, public_key_path
from client.api import MatchClient, wait_for_node
from demo.synthetic import make_lists
from psi import backend
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from server.app import create_server, open_node
from server.watchlist import import_records
from tests.conftest import make_config, tls_for

ROOT = Path(__file__).resolve().parents[2]
LISTS = make_lists(40, 30, 10, seed=53)
REFS = {r.record_id: r.reference for r in LISTS.b}
EXPECTED = {(a, REFS[b]) for a, b in LISTS.overlap}
BASE, LATE = LISTS.b[:-5], LISTS.b[-5:]  # the crashed import adds LATE


def _run(point: str, code: str) -> None:
    env = {**os.environ, "PSI_CRASH_AT": point, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


def _writer(config: NodeConfig, call: str) -> str:
    return ("from pathlib import Path\nfrom agency.config import load_config\nfrom demo.synthetic import make_lists\n"
            "from server.watchlist import import_records, erase_records\nfrom server.rotation import rotate_key\n"
            f"config = load_config(Path({str(config.data_dir.parent / (config.node_id + '.toml'))!r}))\n"
            f"late = make_lists(40, 30, 10, seed=53).b[-5:]\n{call}\n")


def _entries(config: NodeConfig) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in config.audit_log_path.read_text().splitlines()]
    return [line["body"] for line in lines if line["kind"] == "entry"]


def _settled(config: NodeConfig) -> tuple[set[str], int, list[dict[str, object]]]:
    """Restart the node (reconciling), check the log, and return (record ids, key epoch, entries)."""
    node = open_node(config)
    try:
        ids = {r.record_id for r in node.store.records()}
        epoch = node.key.epoch
        assert node.audit.open_intents() == {}
    finally:
        node.close()
    verdict = verify_log(config.audit_log_path, Verifier(public_key_path(config.signing_key_path).read_text()))
    assert verdict.intact, verdict
    entries = _entries(config)
    intents = {e["op"]: e for e in entries if e.get("phase") == "intent"}
    outcomes = {e["op"]: e for e in entries if e.get("phase") == "outcome"}
    assert set(intents) == set(outcomes)  # every intent settled, exactly once
    return ids, epoch, entries


def _last_outcome(entries: list[dict[str, object]], operation: str) -> dict[str, object]:
    return [e for e in entries if e.get("phase") == "outcome" and str(e["operation"]).startswith(operation)][-1]


@pytest.mark.parametrize(("point", "committed"), [
    ("import.after_intent", False),
    ("store.before_commit", False),
    ("import.after_commit", True),
])
def test_import_killed(tmp_path: Path, pki_dir: Path, point: str, committed: bool) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    import_records(config, BASE, "setup")
    _run(point, _writer(config, "import_records(config, late, 'crash')"))
    ids, _, entries = _settled(config)
    assert ({r.record_id for r in LATE} <= ids) is committed
    assert _last_outcome(entries, "watchlist")["outcome"] == ("ok" if committed else "aborted")


def test_erase_killed_after_commit(tmp_path: Path, pki_dir: Path) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    import_records(config, LISTS.b, "setup")
    _run("erase.after_commit", _writer(config, "erase_records(config, [late[0].record_id], 'crash')"))
    ids, _, entries = _settled(config)
    assert LATE[0].record_id not in ids
    assert _last_outcome(entries, "watchlist.erase")["outcome"] == "ok"


@pytest.mark.parametrize(("point", "epoch"), [
    ("rotate.after_fill", 1),
    ("rotate.after_commit", 2),
    ("rotate.after_install", 2),
])
def test_rotation_killed(tmp_path: Path, pki_dir: Path, point: str, epoch: int) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    import_records(config, LISTS.b, "setup")
    _run(point, _writer(config, "rotate_key(config, 'crash')"))
    _, settled_epoch, entries = _settled(config)
    assert settled_epoch == epoch == load_key(config.key_path).epoch
    assert not config.key_path.with_name(config.key_path.name + ".new").exists()
    assert _last_outcome(entries, "key.rotate")["outcome"] == ("ok" if epoch == 2 else "aborted")
    # The settled node answers correctly under the epoch it settled on.
    node = open_node(config)
    try:
        server, port = create_server(node, "127.0.0.1:0", max_workers=4)
        server.start()
        with MatchClient(f"127.0.0.1:{port}", tls_for(pki_dir, "agency-a"), timeout=60) as client:
            result = client.match(LISTS.a, purpose="p", case_reference="c")
        server.stop(grace=None).wait()
    finally:
        node.close()
    assert {(h.record_id, h.reference) for h in result.hits} == EXPECTED


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.add(int(entry.name))
    return found


def test_serving_node_killed_mid_evaluation(tmp_path: Path, pki_dir: Path) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    import_records(config, LISTS.b, "setup")
    port = _free_port()
    toml = tmp_path / "agency-b.toml"
    toml.write_text(toml.read_text().replace('listen = "127.0.0.1:50051"', f'listen = "127.0.0.1:{port}"'))
    env = {**os.environ, "PSI_CRASH_AT": "serve.after_charge", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--config", str(toml), "--quiet"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_node(f"127.0.0.1:{port}", tls_for(pki_dir, "agency-a"), seconds=60,
                      alive=lambda: server.poll() is None)
        workers = _children(server.pid)
        assert workers or backend.active().releases_gil  # worker processes, unless the native core's threads
        channel = grpc.secure_channel(f"127.0.0.1:{port}", tls_for(pki_dir, "agency-a").credentials())
        profile = config.profile
        start = pb.SessionStart(list_id="", mode=pb.MODE_INTERSECTION, key_epoch=1, profile_id=profile.profile_id,
                                profile_hash=profile.definition_hash, total_elements=60, purpose="p",
                                case_reference="c", request_id=uuid.uuid4().hex)
        batch = b"".join(rbcl.crypto_core_ristretto255_random() for _ in range(20))
        with pytest.raises(grpc.RpcError):
            list(pb_grpc.MatchingStub(channel).Evaluate(iter([
                pb.EvaluateRequest(start=start), pb.EvaluateRequest(batch=pb.BlindedBatch(index=0, elements=batch)),
                pb.EvaluateRequest(batch=pb.BlindedBatch(index=1, elements=batch))]), timeout=30))
        assert server.wait(timeout=30) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() and _is_running(pid) for pid in workers) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(Path(f"/proc/{pid}").exists() and _is_running(pid) for pid in workers)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
    _settled(config)
    node = open_node(config)
    try:
        assert node.store.budget_used("agency-a", 1) == 20  # the one batch evaluated, not the 60 announced
    finally:
        node.close()


def _is_running(pid: int) -> bool:
    try:
        state = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
