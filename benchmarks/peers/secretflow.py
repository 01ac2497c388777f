"""SecretFlow's two-party PSI (`spu` 0.9.5, `spu.psi.psi_execute`) as a benchmark peer, over loopback.

    from peers.secretflow import PROTOCOLS, run_secretflow
    run_secretflow("RR22", client_items, server_items)  # {"seconds": ..., "bytes": ..., ...}

spu 0.9.5 pins numpy<2 and jax<=0.4.34, which conflict with this project's numpy>=2, so it lives
in its own virtual environment, `.venv-spu` (made by `make bench` from
benchmarks/peers/constraints-spu.txt; `SPU_PYTHON` names another interpreter). The caller's
process only writes the two parties' CSV inputs and starts a coordinator in that environment:
it starts the two parties, waits until both have imported spu (as openmined-psi's library is
loaded before its clock starts), then times from "go" until both parties have returned. The
parties connect over brpc on 127.0.0.1; when `unshare -n` works (root), they run in a network
namespace of their own, whose loopback counters give the bytes both parties sent (payload plus
TCP/IP headers, both directions); elsewhere `bytes` is None.

This file is also the coordinator's and the parties' entry point, so it imports only the
standard library at module level.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SPU_VENV = ROOT / ".venv-spu"
# Protocol name -> (spu PsiProtocol name, ECDH curve name or "").
PROTOCOLS: dict[str, tuple[str, str]] = {
    "ECDH-FOURQ": ("PROTOCOL_ECDH", "CURVE_FOURQ"),
    "ECDH-25519": ("PROTOCOL_ECDH", "CURVE_25519"),
    "KKRT": ("PROTOCOL_KKRT", ""),
    "RR22": ("PROTOCOL_RR22", ""),
}
RECEIVER = 0  # party 0 holds the client's items and learns the intersection, as our client does
TIMEOUT_S = 1800


class PeerUnavailableError(RuntimeError):
    """The spu environment is missing or broken: the suite records the peer as skipped."""


def spu_python() -> Path:
    return Path(os.environ.get("SPU_PYTHON", SPU_VENV / "bin" / "python"))


def available() -> str | None:
    """None when the peer can run, else why not."""
    python = spu_python()
    if not python.exists():
        return f"{python} is missing (`make bench` creates .venv-spu)"
    return None


def run_secretflow(protocol: str, client_items: Sequence[bytes], server_items: Sequence[bytes],
                   *, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """One two-party PSI run of `protocol` (a key of PROTOCOLS) on these items, timed end to end.

    Returns seconds (wall, link set-up + CSV input + PSI + CSV output of both parties), bytes
    (loopback traffic of both parties, or None), the parties' own seconds, the item counts and
    the intersection size the receiver found (checked against the plain intersection).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown SecretFlow protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    reason = available()
    if reason:
        raise PeerUnavailableError(reason)
    # The peer wants unique keys in a CSV column: hex keeps any byte string a valid cell.
    sides = [list(dict.fromkeys(x.hex() for x in items)) for items in (client_items, server_items)]
    expected = len(set(sides[0]) & set(sides[1]))
    with tempfile.TemporaryDirectory(prefix="bench-spu-") as tmp:
        work = Path(tmp)
        for rank, keys in enumerate(sides):
            (work / f"in{rank}.csv").write_text("id\n" + "\n".join(keys) + "\n")
        isolated = _netns_prefix()
        spec = {"protocol": protocol, "work": str(work), "ports": [_free_port(), _free_port()],
                "timeout_s": timeout_s, "isolated": bool(isolated)}
        (work / "spec.json").write_text(json.dumps(spec))
        command = [str(spu_python()), __file__, "coordinate", str(work / "spec.json")]
        done = subprocess.run([*isolated, *command], capture_output=True, text=True, timeout=timeout_s + 60,
                              check=False)
        if done.returncode != 0:
            raise PeerUnavailableError(f"SecretFlow {protocol} failed ({done.returncode}): {done.stderr[-2000:]}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
    if out["intersection"] != expected:
        raise RuntimeError(f"SecretFlow {protocol} found {out['intersection']} common items, not {expected}")
    return {"protocol": protocol, "items_client": len(sides[0]), "items_server": len(sides[1]), **out}


def _free_port() -> int:  # as harness.free_port: this file may import only the standard library
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _netns_prefix() -> list[str]:
    """`unshare -n` plus bringing its loopback up, when this user may (root); else run as is."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not (unshare and ip):
        return []
    probe = subprocess.run([unshare, "-n", ip, "link", "set", "lo", "up"], capture_output=True, check=False)
    if probe.returncode != 0:
        return []
    return [unshare, "-n", "sh", "-c", f'{ip} link set lo up && exec "$@"', "sh"]


def _loopback_bytes() -> int | None:
    """Bytes sent on this network namespace's loopback so far (equal to those received)."""
    for line in Path("/proc/self/net/dev").read_text().splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            return int(counters.split()[8])
    return None


def _coordinate(spec_path: Path) -> None:
    """In the spu environment: start both parties, release them together, time them, print JSON."""
    spec = json.loads(spec_path.read_text())
    work = Path(spec["work"])
    logs = [(work / f"party{rank}.log").open("w") for rank in (0, 1)]
    parties = [subprocess.Popen([sys.executable, __file__, "party", str(spec_path), str(rank)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logs[rank], text=True)
               for rank in (0, 1)]
    try:
        for party in parties:
            if party.stdout is None or party.stdout.readline().strip() != "ready":
                raise SystemExit(_failure(parties, work))
        sent = _loopback_bytes()
        started = time.monotonic()
        for party in parties:
            assert party.stdin is not None
            party.stdin.write("go\n")
            party.stdin.flush()
        for party in parties:
            party.communicate(timeout=spec["timeout_s"])
        after = _loopback_bytes()
    finally:
        for party in parties:
            if party.poll() is None:
                party.kill()
        for log in logs:
            log.close()
    if any(p.returncode for p in parties):
        raise SystemExit(_failure(parties, work))
    reports = [json.loads((work / f"report{rank}.json").read_text()) for rank in (0, 1)]
    # Until the later party returned from psi_execute (CLOCK_MONOTONIC is system-wide), not until
    # the interpreters' teardown: our client's close is not timed either.
    seconds = max(r["finished"] for r in reports) - started
    print(json.dumps({"seconds": round(seconds, 3),
                      "bytes": after - sent if spec["isolated"] and sent is not None and after is not None else None,
                      "party_seconds": [r["seconds"] for r in reports],
                      "intersection": reports[RECEIVER]["intersection"]}))


def _failure(parties: list[subprocess.Popen[str]], work: Path) -> str:
    for party in parties:
        if party.poll() is None:
            party.kill()
        party.wait()
    return "\n".join(f"party {rank}: exit {p.returncode}\n" + (work / f"party{rank}.log").read_text()[-1500:]
                     for rank, p in enumerate(parties))


def _party(spec_path: Path, rank: int) -> None:
    """One party: import spu, say ready, wait for go, run psi_execute, write its own time and count."""
    from spu import libspu, psi  # noqa: PLC0415  (only in the spu environment)

    spec = json.loads(spec_path.read_text())
    work = Path(spec["work"])
    protocol, curve = PROTOCOLS[spec["protocol"]]
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    started = time.monotonic()
    desc = libspu.link.Desc()
    desc.id = "bench"
    for other, port in enumerate(spec["ports"]):
        desc.add_party(f"party{other}", f"127.0.0.1:{port}")
    desc.connect_retry_interval_ms = 20  # the first party up waits for the other: poll, not 1 s sleeps
    desc.recv_timeout_ms = int(spec["timeout_s"] * 1000)
    desc.http_timeout_ms = int(spec["timeout_s"] * 1000)
    link = libspu.link.create_brpc(desc, rank)
    config = psi.PsiExecuteConfig(
        protocol_conf=psi.PsiProtocolConfig(
            protocol=psi.parse_protocol(protocol), receiver_rank=RECEIVER, broadcast_result=False,
            ecdh_params=psi.EcdhParams(curve=psi.parse_curve_type(curve)) if curve else psi.EcdhParams()),
        input_params=psi.InputParams(path=str(work / f"in{rank}.csv"), selected_keys=["id"], keys_unique=True),
        # No re-sorting of the output into the input's order: our client does not sort its hits either.
        output_params=psi.OutputParams(path=str(work / f"out{rank}.csv"), disable_alignment=True),
    )
    report = psi.psi_execute(config, link)
    finished = time.monotonic()
    link.stop_link()
    # A file, not stdout: the library logs to stdout too.
    (work / f"report{rank}.json").write_text(json.dumps({"seconds": round(finished - started, 3), "finished": finished,
                                                         "intersection": report.intersection_count}))


if __name__ == "__main__":
    if sys.argv[1] == "coordinate":
        _coordinate(Path(sys.argv[2]))
    elif sys.argv[1] == "party":
        _party(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
