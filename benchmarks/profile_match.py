"""Where the time of one balanced match goes, on both sides: a sampling profile of every thread.

    python benchmarks/profile_match.py [--log2 16] [--top 12]

The run of the suite's balanced section (a cold server: the list imported in this process,
then `psi serve` in its own; one client match over gRPC with mutual TLS), with a sampler in
each process. cProfile sees only the thread that enabled it, and our work runs in gRPC's and
the worker pool's threads, so the sampler reads every Python thread's stack 100 times a second
(`sys._current_frames`) and the kernel's state of each thread (/proc/self/task): a thread
counts as busy when it is running or runnable, and its sample goes to the innermost frame of this
project's code. Threads without Python frames (the native core's rayon pool, gRPC's C core)
are counted by their kernel name. Writes results/profile_2pN.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from types import FrameType
from typing import Any

from bench_match import PARTNER
from harness import ROOT, make_node, serving

from cli.main import main as psi_main
from client.api import MatchClient, worker_pool
from demo.synthetic import make_lists
from psi import backend

PROJECT = tuple(str(ROOT / d) + os.sep for d in ("psi", "psiwire", "agency", "server", "client", "cli"))
HZ = 100
TOP = 12  # places and thread names kept per report
RESULTS = ROOT / "benchmarks" / "results"


def _where(frame: FrameType | None) -> str:
    """The innermost frame of this project's code, else the innermost frame (its module and function)."""
    innermost = frame
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(PROJECT):
            return f"{os.path.relpath(name, ROOT)}:{frame.f_code.co_name}"
        frame = frame.f_back
    if innermost is None:
        return "?"
    return f"{Path(innermost.f_code.co_filename).name}:{innermost.f_code.co_name}"


def _cpu_by_name() -> defaultdict[str, float]:
    """CPU seconds of this process's live threads, summed by kernel name."""
    cpu: defaultdict[str, float] = defaultdict(float)
    for entry in os.scandir("/proc/self/task"):
        try:
            name, _, seconds = _task(int(entry.name))
        except OSError:  # the thread ended
            continue
        cpu[name] += seconds
    return cpu


def _most(counts: dict[str, float], top: int) -> list[tuple[str, float]]:
    return sorted(counts.items(), key=lambda item: -item[1])[:top]


def _task(tid: int) -> tuple[str, str, float]:
    """(kernel name, state, CPU seconds) of one of this process's threads."""
    raw = Path(f"/proc/self/task/{tid}/stat").read_text()
    name = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    return name, fields[0], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """Counts, HZ times a second, the busy threads by where they are (see the module's docstring)."""

    def __init__(self) -> None:
        self.busy: defaultdict[str, float] = defaultdict(float)  # a native pool's sample may be shared by calls
        self.waiting: defaultdict[str, float] = defaultdict(float)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self.started, self._cpu_before = time.perf_counter(), _cpu_by_name()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.perf_counter() - self.started
        after = _cpu_by_name()  # threads that ended meanwhile are missing: a lower bound
        self.cpu = {name: seconds - self._cpu_before.get(name, 0.0) for name, seconds in after.items()}

    def _run(self) -> None:
        me = threading.get_native_id()
        while not self._stop.wait(1 / HZ):
            self.samples += 1
            python = {t.native_id: t.ident for t in threading.enumerate()}
            frames = sys._current_frames()
            native: list[str] = []  # busy threads without Python frames, by kernel name
            calls: list[str] = []  # Python threads inside a backend call: what the native pool works for
            for entry in os.scandir("/proc/self/task"):
                tid = int(entry.name)
                if tid == me:
                    continue
                try:
                    name, state, _ = _task(tid)
                except OSError:  # the thread ended
                    continue
                ident = python.get(tid)
                if ident is None:
                    if state == "R":
                        native.append(name)
                    continue
                where = _where(frames.get(ident))
                calls += [where] if where.startswith("psi/backend.py:") else []
                (self.busy if state == "R" else self.waiting)[where] += 1
            for name in native:  # the rayon pool's threads carry the process's name; gRPC's their own
                if name == "python" and calls:
                    for call in calls:
                        self.busy[f"{call} (native pool)"] += 1 / len(calls)
                else:
                    self.busy[f"[{name}] thread, no Python frames"] += 1

    def report(self, top: int) -> dict[str, Any]:
        """Busy thread-seconds by place (a sample is 1/HZ s of one thread), and CPU seconds by thread name."""
        return {"wall_s": round(self.seconds, 2), "busy_thread_s": round(sum(self.busy.values()) / HZ, 2),
                "busy_by_place_s": {k: round(v / HZ, 2) for k, v in _most(self.busy, top)},
                "cpu_s_by_thread_name": {k: round(v, 2) for k, v in _most(self.cpu, top) if v > 0}}


def serve_profiled(out: Path, argv: list[str]) -> int:
    """The server side: `psi serve` under the sampler, its report written when the node stops."""
    with Sampler() as sampler:
        code = int(psi_main(argv))
    out.write_text(json.dumps(sampler.report(TOP), indent=1))
    return code


def profile(log2: int) -> dict[str, Any]:
    n = 1 << log2
    lists = make_lists(n, n, n // 2, seed=log2)
    worker_pool().start()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with Sampler() as importing:
            node = make_node(work, lists.b, PARTNER)
        server_out = work / "server-profile.json"
        with serving(node, (__file__, "--serve-profiled", str(server_out))), \
                MatchClient(node.target, node.client_tls) as client, Sampler() as matching:
            result = client.match(lists.a, purpose="benchmark", case_reference="BENCH")
        server = json.loads(server_out.read_text())
    return {"log2": log2, "keys": result.keys, "backend": backend.active().name,
            "server_import_and_precompute": importing.report(TOP), "client_match": matching.report(TOP),
            "server_while_serving": server}


def markdown(p: dict[str, Any]) -> str:
    lines = [f"# Where the time goes: balanced 2^{p['log2']} ({p['keys']:,} keys), backend `{p['backend']}`", "",
             f"Sampled {HZ} times a second; busy thread-seconds (running or runnable: on a shared host more "
             "than the CPU it got) by the innermost frame of this project's code; a native pool's thread counts "
             "for the backend call it works for.", ""]
    for title, key in (("Server: list import and tag precompute (in the benchmark's process)",
                        "server_import_and_precompute"), ("Client: the match", "client_match"),
                       ("Server: serving the match (from its start)", "server_while_serving")):
        part = p[key]
        lines += [f"## {title}", "", f"Wall {part['wall_s']} s, busy {part['busy_thread_s']} thread-s.", "",
                  "| where | busy s |", "|---|---:|",
                  *(f"| `{k}` | {v} |" for k, v in part["busy_by_place_s"].items()), "",
                  "CPU seconds in this part, by thread name (the native pool's threads are named `python`): "
                  + ", ".join(f"{k} {v}" for k, v in part["cpu_s_by_thread_name"].items()), ""]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-profiled":
        return serve_profiled(Path(sys.argv[2]), sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2", type=int, default=16)
    args = parser.parse_args()
    p = profile(args.log2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"profile_2p{args.log2}.json").write_text(json.dumps(p, indent=1) + "\n")
    (RESULTS / f"profile_2p{args.log2}.md").write_text(markdown(p))
    print(markdown(p))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
