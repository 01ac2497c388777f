"""Opening an audit log and appending one entry, with and without a verified head, by log length.

    python benchmarks/bench_audit.py [--sizes 1000 1000000] [--runs 7] [--full-runs 3]
                                     [--out benchmarks/results/audit_open.json]

Each log is built directly with the chain functions (a signed checkpoint every
100 entries, as a node writes it), once. Then, as `psi match` does: open an
AuditLog, append one entry, close it (which signs a checkpoint); the medians
of several runs, first with `LOG.head` present (only what follows it is
verified), then with it removed before each run (the whole log is verified).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from Crypto.PublicKey import ECC  # noqa: E402

from agency.audit.chain import GENESIS, Signer, checkpoint_line, make_entry  # noqa: E402
from agency.audit.log import AuditLog, head_path, timestamp  # noqa: E402
from agency.audit.verify import sidecar_path  # noqa: E402

EVERY = 100


def build(path: Path, entries: int, signer: Signer) -> float:
    """A log of `entries` entries and their checkpoints; returns the seconds it took."""
    started = time.perf_counter()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    head, checkpoint = GENESIS, b""
    chunk: list[bytes] = []
    with path.open("wb") as out:
        for seq in range(entries):
            now = timestamp(start + dt.timedelta(seconds=seq))
            body = {"time": now, "node": "node-b",
                    "operation": "query.served", "partner": "agency-a", "purpose": "fugitive search",
                    "case": f"C-{seq % 997}", "items": 100, "outcome": "ok", "status": "OK"}
            entry = make_entry(seq, head, body)
            head = entry.hash
            chunk.append(entry.line(signer))
            if (seq + 1) % EVERY == 0 or seq + 1 == entries:
                checkpoint = checkpoint_line(seq + 1, head, now, signer)
                chunk.append(checkpoint)
                out.write(b"".join(chunk))
                chunk = []
    sidecar_path(path).write_bytes(checkpoint)
    return time.perf_counter() - started


def one_run(path: Path, signer: Signer) -> dict[str, float]:
    """Open, append one entry, close: seconds of each step."""
    t0 = time.perf_counter()
    log = AuditLog(path, "node-b", signer, checkpoint_every=EVERY)
    t1 = time.perf_counter()
    log.append({"operation": "match.requested", "partner": "agency-a", "case": "C-bench", "outcome": "ok"})
    t2 = time.perf_counter()
    log.close()
    t3 = time.perf_counter()
    return {"open": t1 - t0, "append": t2 - t1, "close": t3 - t2, "total": t3 - t0}


def medians(path: Path, signer: Signer, runs: int, with_head: bool) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        if not with_head:
            head_path(path).unlink(missing_ok=True)
        samples.append(one_run(path, signer))
    return {step: statistics.median(s[step] for s in samples) for step in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=7, help="runs with a head")
    parser.add_argument("--full-runs", type=int, default=3, help="runs without a head (full verification)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/audit_open.json")
    args = parser.parse_args()
    signer = Signer(ECC.generate(curve="Ed25519"))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as work:
        for size in args.sizes:
            path = Path(work) / f"audit-{size}.log"
            build_seconds = build(path, size, signer)
            print(f"{size:>9} entries: built in {build_seconds:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)")
            without = medians(path, signer, args.full_runs, with_head=False)
            with_head = medians(path, signer, args.runs, with_head=True)
            print(f"{'':>18} with head: open {with_head['open'] * 1e3:.1f} ms, total {with_head['total'] * 1e3:.1f} ms;"
                  f" without: open {without['open'] * 1e3:.0f} ms, total {without['total'] * 1e3:.0f} ms")
            results.append({"entries": size, "bytes": path.stat().st_size, "build_seconds": round(build_seconds, 1),
                            "with_head": with_head, "without_head": without})
    doc = {"benchmark": "audit log: open + append one entry + close", "checkpoint_every": EVERY,
           "runs": {"with_head": args.runs, "without_head": args.full_runs},
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           "date": dt.date.today().isoformat(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(doc))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def markdown(doc: dict[str, Any]) -> str:
    rows = ["| entries | log size | head | open | append | close | open + append + close |",
            "|---:|---:|---|---:|---:|---:|---:|"]
    for r in doc["results"]:
        for label, key in (("verified head", "with_head"), ("none (full verification)", "without_head")):
            t = r[key]
            rows.append(f"| {r['entries']:,} | {r['bytes'] / 2**20:.1f} MiB | {label} | {t['open'] * 1e3:.1f} ms | "
                        f"{t['append'] * 1e3:.1f} ms | {t['close'] * 1e3:.1f} ms | {t['total'] * 1e3:.1f} ms |")
    machine, runs = doc["machine"], doc["runs"]
    return ("# Audit log: open and append, by log length\n\n"
            f"`python benchmarks/bench_audit.py` on {machine['cpus']} CPUs, Python {machine['python']}, "
            f"{doc['date']}. Medians of {runs['with_head']} runs with a head, {runs['without_head']} without "
            "(the head removed before each run). A checkpoint every 100 entries; close signs one more.\n\n"
            + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
