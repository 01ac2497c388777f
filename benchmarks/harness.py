"""Shared set-up for benchmarks: a node in its own process on 127.0.0.1, with mutual TLS."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agency.config import load_config, render_config  # noqa: E402
from cli.pki import init_pki  # noqa: E402
from client.api import ClientTls, wait_for_node  # noqa: E402
from psi.records import Record  # noqa: E402
from psi.workers import WorkerPool  # noqa: E402
from server.watchlist import import_records  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mib(pid: int | None = None) -> float:
    """Peak resident memory of a live process (VmHWM), or of this one."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return _status_mib(pid, "VmHWM:") or float("nan")


@dataclass(frozen=True)
class BenchNode:
    config: Path
    target: str
    client_tls: ClientTls
    import_seconds: float


def make_node(work: Path, server_records: Sequence[Record], partner_toml: str) -> BenchNode:
    """A server node config with its list imported (tags precomputed), and a client identity."""
    pki = work / "pki"
    init_pki(pki, ["bench-server", "bench-client"])
    port = free_port()
    config = work / "bench-server.toml"
    config.write_text(render_config("bench-server", f"127.0.0.1:{port}", "data", str(pki / "ca.pem"),
                                    str(pki / "bench-server.pem"), str(pki / "bench-server.key"),
                                    profile="exact/1")  # one key per name: sizes comparable to the peer's
                      + partner_toml)
    started = time.perf_counter()
    with WorkerPool() as pool:  # as `psi watchlist import` does
        import_records(load_config(config), server_records, "benchmark", executor=pool)
    return BenchNode(config, f"127.0.0.1:{port}",
                     ClientTls(pki / "ca.pem", pki / "bench-client.pem", pki / "bench-client.key"),
                     time.perf_counter() - started)


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    peak_mib: float = float("nan")


@contextmanager
def serving(node: BenchNode, launcher: Sequence[str] = ("-m", "cli.main")) -> Iterator[ServerProcess]:
    """Run `psi serve` in its own process (its own core, as in a deployment); stop it afterwards.

    `launcher`: the interpreter's arguments before `serve` (a profiler's wrapper, for one)."""
    proc = subprocess.Popen([sys.executable, *launcher, "serve", "--config", str(node.config), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    server = ServerProcess(proc)
    try:
        wait_for_node(node.target, node.client_tls, seconds=120, alive=lambda: proc.poll() is None)
        yield server
        server.peak_mib = peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (e.g. its worker pool)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def _private_mib(pid: int) -> float:
    """What a process holds that no other does (a forked worker shares its parent's pages until it writes)."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total / 1024


@dataclass
class Peak:
    mib: float = 0.0


@contextmanager
def with_workers_peak(seconds: float = 0.05) -> Iterator[Peak]:
    """The peak of this process's resident memory plus its forked workers' private memory, sampled every
    `seconds` (at least this process's VmHWM), in the yielded `Peak` once the block ends."""
    me, peak, done = os.getpid(), Peak(), threading.Event()

    def sample() -> None:
        while not done.wait(seconds):
            try:
                peak.mib = max(peak.mib, _status_mib(me, "VmRSS:") + sum(map(_private_mib, _children(me))))
            except OSError:  # a worker ended while read
                continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()
        peak.mib = max(peak.mib, peak_rss_mib(me))


def tree_peak_mib(pid: int) -> dict[str, float]:
    """Peak resident memory of the main process and of its largest child."""
    children = [peak_rss_mib(c) for c in _children(pid)]
    return {"main": round(peak_rss_mib(pid), 1), "largest_worker": round(max(children, default=0.0), 1)}
