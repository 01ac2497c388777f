"""Micro-benchmark of the group operations' batch calls on each backend (psi/backend.py), on this machine.

    python benchmarks/bench_backends.py [--keys N]

Each backend runs in its own process (PSI_BACKEND=...), so that the epoch precompute's worker
pool is the one a node would use: threads for the native core, spawned processes for the
Python reference. Per-call figures are one batch call in the calling thread: the native
core spreads it over every core, the reference runs on one. Writes results/backends.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from psi import backend, group, tags  # noqa: E402
from psi.executor import map_chunks  # noqa: E402
from psi.workers import WorkerPool, cpu_count  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


REPEAT = 3  # the host is shared and noisy: the median of a few calls


def _per_key_us(fn: Callable[[], object], keys: int) -> float:
    """Median wall time per key of REPEAT calls."""
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) / keys * 1e6, 2)


def measure(keys: int) -> dict[str, Any]:
    """This process's backend: microseconds of wall time per key for each call, and the epoch precompute rate."""
    active = backend.active()
    values = [f"name:person {i}|1970-01-01".encode() for i in range(keys)]
    key = group.random_scalar()
    elements = active.hash_to_group(values)
    blinds, blinded = active.blind(values)
    evaluated = active.blind_evaluate(key, blinded)
    labels = [b"REF-%d\x1farrest" % i for i in range(keys)]
    calls = {
        "hash_to_group": lambda: active.hash_to_group(values),
        "blind (HashToGroup + 1 mult)": lambda: active.blind(values),
        "blind_evaluate (validate + 1 mult)": lambda: active.blind_evaluate(key, blinded),
        "finalize (invert + validate + 1 mult + hash)": lambda: active.finalize(values, blinds, evaluated),
        "epoch_entries (server's own: 1 mult + 2 hashes + AES-SIV)": lambda: active.epoch_entries(
            key, values, elements, labels, tags.CARDINALITY_DOMAIN, b"psi-v1-label"),
        "cardinality_materials (validate + 1 mult + hash)": lambda: active.cardinality_materials(
            key, evaluated, tags.CARDINALITY_DOMAIN),
    }
    per_key = {name: _per_key_us(call, keys) for name, call in calls.items()}
    inputs = [("r", "rule", v, elements[i * 32:(i + 1) * 32], labels[i]) for i, v in enumerate(values)]
    with WorkerPool() as pool:
        pool.start()
        times = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            for _part in map_chunks(pool, tags.epoch_entries, inputs, key, chunk=2048).parts():
                pass
            times.append(time.perf_counter() - started)
        epoch_s = statistics.median(times)
        pool_kind = "threads" if pool.threads else "processes"
    return {"backend": active.name, "keys": keys, "us_per_key": per_key,
            "epoch_entries_keys_per_s": round(keys / epoch_s), "epoch_pool": f"{pool.workers} {pool_kind}"}


def markdown(runs: list[dict[str, Any]], machine: str) -> str:
    names = list(runs[0]["us_per_key"])
    lines = [f"# Batch calls per backend ({machine})", "",
             f"Wall time per key of one batch call, median of {REPEAT} (the native core uses every core "
             "inside a call; the reference one core per call, and a process pool for both).", "",
             "| call | " + " | ".join(r["backend"] for r in runs) + " | ratio |",
             "|---|" + "---|" * (len(runs) + 1)]
    for name in names:
        cells = [r["us_per_key"][name] for r in runs]
        ratio = f"{cells[0] / cells[-1]:.1f}x" if len(cells) > 1 else ""
        lines.append(f"| {name} | " + " | ".join(f"{c} us" for c in cells) + f" | {ratio} |")
    lines += ["", "Epoch precompute (`tags.epoch_entries` over the node's pool: the batch call above, then "
              "the entries' tuples):", ""]
    lines += [f"- {r['backend']}: {r['epoch_entries_keys_per_s']:,} keys/s ({r['keys']:,} keys, {r['epoch_pool']})"
              for r in runs]
    return "\n".join(lines) + "\n"


def compare(keys: int) -> dict[str, Any]:
    """Each available backend measured in a child process of its own; also written to results/backends.*."""
    runs = []
    for name in ("python", *(["native"] if backend.load_native() else [])):
        out = subprocess.run([sys.executable, __file__, "--child", "--keys", str(keys)], check=True,
                             capture_output=True, text=True, env={**os.environ, "PSI_BACKEND": name})
        runs.append(json.loads(out.stdout))
    machine = f"{platform.machine()}, {cpu_count()} cores, Python {platform.python_version()}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backends.json").write_text(json.dumps({"machine": machine, "runs": runs}, indent=1) + "\n")
    (RESULTS / "backends.md").write_text(markdown(runs, machine))
    return {"machine": machine, "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.keys)))
        return 0
    print(json.dumps(compare(args.keys)["runs"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
