"""`make bench`: speed, traffic and memory beside openmined-psi and SecretFlow, in one run, on this machine.

    python benchmarks/suite.py [--large] [--quick] [--repeat N] [--no-bulk]

Balanced matches at 2^10..2^16 records per side (2^18, 2^20 with --large),
end to end over loopback gRPC with mutual TLS and a cold server (its tags are
computed in the run), beside openmined-psi's library calls and SecretFlow's
two-party PSI (ECDH on FourQ and on Curve25519, KKRT, RR22; benchmarks/peers/)
on the same items; the group operations' batch calls on each backend
(bench_backends.py); an unbalanced query of 1,000 records against the bulk
section's largest list (2^20 = 1,048,576 records, imported once for both) with
a cold and a warm client tag cache; the server's tag precompute rate (a new key
epoch) and its import rate; a 1% list update and the query after it;
Bulk mode beside SecretFlow's RR22 and KKRT at 2^16 and 2^20 records a side (the bulk section, bulk.py).
Writes results/latest.json, results/latest.md and PNG charts.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import bench_backends
import bulk
from bench_match import PARTNER, keys_of, run_openmined
from harness import ROOT, BenchNode, make_node, serving, tree_cpu_seconds, tree_peak_mib
from peers import secretflow
from rich.console import Console
from rich.progress import Progress

from agency.config import load_config
from client.api import MatchClient, Traffic, worker_pool
from demo.synthetic import SyntheticPair, make_lists
from psi import backend
from psi.records import Record
from psi.workers import WorkerPool
from server.rotation import rotate_key
from server.watchlist import import_records

console = Console()
RESULTS = ROOT / "benchmarks" / "results"
SLOW_PEER_ONCE_FROM = 16  # log2 from which openmined-psi runs once (a run takes ~40 s there)
NOISE_NOTE = ("The machine has 2 cores shared with other work: timings move by tens of percent from one "
              "minute to the next. Each measurement is the median of `repeat` runs, interleaved across "
              "systems, except the slow peers, run once to keep `make bench` under 15 minutes: SecretFlow's "
              "ECDH on Curve25519 at every size, and openmined-psi from 2^16 records per side.")


def _query(node: BenchNode, records: list[Record], expected: set[tuple[str, str]], cache: Path | None,
           server_pid: int, client: MatchClient | None = None) -> dict[str, Any]:
    """One timed match, on `client` (a long-running one) or on a new client (a new process's view)."""
    cpu_server = tree_cpu_seconds(server_pid)
    cpu_client = tree_cpu_seconds(os.getpid())
    own = client or MatchClient(node.target, node.client_tls, cache_dir=cache)
    try:
        sent, received = own.traffic.sent, own.traffic.received
        started = time.perf_counter()
        result = own.match(records, purpose="benchmark", case_reference="BENCH")
        wall = time.perf_counter() - started
        traffic = Traffic(own.traffic.sent - sent, own.traffic.received - received)
    finally:
        if client is None:
            own.close()
    if {(h.record_id, h.reference) for h in result.hits} != expected:
        raise SystemExit("a benchmark result differs from the known overlap")
    return {"wall_s": round(wall, 3), "keys": result.keys,
            "cpu_client_s": round(tree_cpu_seconds(os.getpid()) - cpu_client, 2),
            "cpu_server_s": round(tree_cpu_seconds(server_pid) - cpu_server, 2),
            "bytes_sent": traffic.sent, "bytes_received": traffic.received}


def _expected(a: list[Record], b: list[Record], overlap: frozenset[tuple[str, str]]) -> set[tuple[str, str]]:
    refs = {r.record_id: r.reference for r in b}
    wanted = {r.record_id for r in a}
    return {(x, refs[y]) for x, y in overlap if x in wanted}


def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the median `key` (the lower middle one of an even count), with every run's figure."""
    chosen = sorted(runs, key=lambda r: r[key])[(len(runs) - 1) // 2]
    return {**chosen, "runs_s": [r[key] for r in runs]} if len(runs) > 1 else chosen


def _ours_balanced(lists: SyntheticPair, log2: int, work: Path) -> dict[str, Any]:
    """A cold server (its list imported, so its tags computed, in the timed run) and one match over gRPC."""
    node = make_node(work, lists.b, PARTNER)
    with serving(node) as server:
        ours = _query(node, lists.a, _expected(lists.a, lists.b, lists.overlap), None, server.proc.pid)
        memory = tree_peak_mib(server.proc.pid)
    return ours | {"server_precompute_s": round(node.import_seconds, 3),
                   "end_to_end_cold_s": round(node.import_seconds + ours["wall_s"], 3), "server_peak_mib": memory}


def balanced(log2: int, work: Path, repeat: int) -> dict[str, Any]:
    """Ours, openmined-psi and SecretFlow's protocols on the same items, interleaved, medians of their runs."""
    n = 1 << log2
    lists = make_lists(n, n, n // 2, seed=log2)
    client_items, server_items = keys_of(lists.a), keys_of(lists.b)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "ours": lambda: _ours_balanced(lists, log2, work / f"ours-{time.monotonic_ns()}"),
        "openmined_psi": lambda: run_openmined(client_items, server_items),
    }
    skipped: dict[str, dict[str, str]] = {}
    for protocol in secretflow.PROTOCOLS:
        if reason := secretflow.available():
            skipped[protocol] = {"skipped": reason}
        else:
            runners[protocol] = functools.partial(secretflow.run_secretflow, protocol, client_items, server_items)
    counts = {name: _repeats(name, log2, repeat) for name in runners}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in runners}
    for round_ in range(max(counts.values())):  # interleaved, so that a noisy minute hits every system alike
        for name, run in runners.items():
            if round_ < counts[name]:
                try:
                    runs[name].append(run())
                except secretflow.PeerUnavailableError as exc:
                    skipped[name] = {"skipped": str(exc)[:500]}
                    counts[name] = 0
    ours = _median(runs.pop("ours"), "end_to_end_cold_s")
    peers = {name: _median(r, "seconds") for name, r in runs.items() if r}
    openmined = peers.pop("openmined_psi")
    return {"log2": log2, "records": n, "keys": ours["keys"], "repeats": counts, "ours": ours,
            "openmined_psi": openmined, "secretflow": peers | skipped,
            "speedup": {name: round(r["seconds"] / ours["end_to_end_cold_s"], 2)
                        for name, r in {"openmined_psi": openmined, **peers}.items()}}


def _repeats(name: str, log2: int, repeat: int) -> int:
    """The slow peers run once where a run takes minutes, to keep `make bench` under 15 minutes."""
    if name == "ECDH-25519" or (name == "openmined_psi" and log2 >= SLOW_PEER_ONCE_FROM):
        return 1
    return repeat


def unbalanced(sides: bulk.Sides, node: BenchNode, client_records: int, work: Path, repeat: int) -> dict[str, Any]:
    """A few client records against the bulk section's largest list, on its node (imported once for both),
    served to a partner of intersection mode only: a node that offers bulk mode also keeps its bulk list in
    memory (docs/architecture.md), which the bulk section's server peak shows."""
    node = bulk.intersection_only(node)
    a, b, overlap = sides.load("client")[:client_records], sides.load("server"), sides.load("overlap")
    keys = len(sides.load("items")[1])
    server_records = len(b)
    expected = _expected(a, b, overlap)
    out: dict[str, Any] = {"server_records": server_records, "client_records": client_records,
                           "server_keys": keys, "precompute_s": round(node.import_seconds, 2),
                           "precompute_keys_per_s": round(keys / node.import_seconds), "repeats": repeat}
    with serving(node) as server:
        pid = server.proc.pid
        colds, clients = [], []
        for i in range(repeat):  # each cold run: a new agency client with an empty cache directory
            clients.append(MatchClient(node.target, node.client_tls, cache_dir=work / f"client-cache-{i}"))
            colds.append(_query(node, a, expected, work / f"client-cache-{i}", pid, clients[-1]))
        client, cache = clients.pop(), work / f"client-cache-{repeat - 1}"  # an agency's long-running client
        for other in clients:
            other.close()
        out["cold_cache"] = _median(colds, "wall_s")
        out["warm_cache"] = _median([_query(node, a, expected, cache, pid, client) for _ in range(repeat)],
                                    "wall_s")
        out["warm_disk_cache_new_client"] = _query(node, a, expected, cache, pid)
        changed = [replace(r, reference=r.reference + "-u") for r in b[: server_records // 100]]
        started = time.perf_counter()
        report = import_records(load_config(node.config), changed, "benchmark")
        out["update_1pct"] = {"records": len(changed), "keys_recomputed": report.match_keys,
                              "seconds": round(time.perf_counter() - started, 2)}
        after = _expected(a, [*changed, *b[len(changed):]], overlap)
        out["after_update_warm_cache"] = _query(node, a, after, cache, pid, client)
        client.close()
        out["server_peak_mib"] = tree_peak_mib(pid)
    started, cpu = time.perf_counter(), tree_cpu_seconds(os.getpid())  # a new key epoch, from the stored keys
    with WorkerPool() as pool:  # as `psi keys rotate` does
        rotation = rotate_key(load_config(node.config), "benchmark", executor=pool)
    seconds = time.perf_counter() - started
    out["epoch_precompute"] = {"keys": rotation.tags, "seconds": round(seconds, 2),
                               "cpu_s": round(tree_cpu_seconds(os.getpid()) - cpu, 2),
                               "keys_per_s": round(rotation.tags / seconds)}
    return out


def _seconds(run: dict[str, Any] | None) -> str:
    return f"{run['seconds']:.2f}" if run and "seconds" in run else "skipped"


def _balanced_md(results: dict[str, Any]) -> list[str]:
    rows = results["balanced"]
    peers = ["openmined_psi", *secretflow.PROTOCOLS]
    names = ["openmined-psi", *(f"SF {p}" for p in secretflow.PROTOCOLS)]
    lines = ["## Balanced match, end to end", "",
             f"Ours: a cold server (list import with its tag precompute, then `psi serve`), one client match over "
             f"gRPC with mutual TLS, backend `{results['backend']}`. openmined-psi: its library calls in one process. "
             "SecretFlow (SF, spu 0.9.5 `psi_execute`): two processes over brpc on 127.0.0.1, from link set-up "
             "to both parties' return, CSV input and output included. Same items for all (the records' match keys "
             "under the exact profile). Seconds are medians of the runs in `repeats` (latest.json has each run).",
             "", "| records per side | keys | ours: precompute s | ours: match s | ours: end to end s | "
             + " | ".join(f"{n} s" for n in names) + " |", "|" + "---:|" * (5 + len(names))]
    for b in rows:
        o = b["ours"]
        runs = [b["openmined_psi"], *(b["secretflow"].get(p) for p in secretflow.PROTOCOLS)]
        lines.append(f"| 2^{b['log2']} | {b['keys']:,} | {o['server_precompute_s']} | {o['wall_s']} | "
                     f"{o['end_to_end_cold_s']} | " + " | ".join(_seconds(r) for r in runs) + " |")
    lines += ["", "Ratios, the peer's seconds over ours (above 1: ours is faster):", "",
              "| records per side | " + " | ".join(f"vs {n}" for n in names) + " |",
              "|---:|" + "---:|" * len(names)]
    for b in rows:
        lines.append(f"| 2^{b['log2']} | " + " | ".join(
            f"{b['speedup'][p]:.2f}" if p in b["speedup"] else "-" for p in peers) + " |")
    lines += ["", "Traffic: ours counts gRPC message bytes; openmined-psi its serialized messages; SecretFlow the "
              "loopback bytes of a network namespace of its own (payload and TCP/IP headers).", "",
              "| records per side | ours bytes | " + " | ".join(f"{n} bytes" for n in names)
              + " | ours: server peak MiB |", "|---:|" + "---:|" * (len(names) + 2)]
    for b in rows:
        o = b["ours"]
        sizes = [b["openmined_psi"].get("bytes"), *(b["secretflow"].get(p, {}).get("bytes")
                                                    for p in secretflow.PROTOCOLS)]
        lines.append(f"| 2^{b['log2']} | {o['bytes_sent'] + o['bytes_received']:,} | "
                     + " | ".join(f"{x:,}" if x is not None else "-" for x in sizes)
                     + f" | {o['server_peak_mib']['main']} |")
    return lines


def _unbalanced_md(u: dict[str, Any]) -> list[str]:
    lines = ["## Unbalanced", "", f"{u['client_records']:,} client records against {u['server_records']:,} "
             f"({u['server_keys']:,} server keys); cold cache and warm cache: medians of {u['repeats']} runs "
             "(each cold run a new client with an empty cache directory).", "",
             "| step | wall s | bytes sent | bytes received |", "|---|---:|---:|---:|"]
    for step in ("cold_cache", "warm_cache", "warm_disk_cache_new_client", "after_update_warm_cache"):
        s = u[step]
        lines.append(f"| {step.replace('_', ' ')} | {s['wall_s']} | {s['bytes_sent']:,} | {s['bytes_received']:,} |")
    e = u["epoch_precompute"]
    lines += ["", f"Server tag precompute for a new key epoch (`psi keys rotate`, storage included): "
              f"{e['keys_per_s']:,} keys/s ({e['keys']:,} keys in {e['seconds']} s, {e['cpu_s']} CPU s). "
              f"Import of the list from records (match keys, HashToGroup, tags, storage): "
              f"{u['precompute_keys_per_s']:,} keys/s ({u['precompute_s']} s). "
              f"1% update: {u['update_1pct']['records']:,} records, "
              f"{u['update_1pct']['keys_recomputed']:,} keys recomputed in {u['update_1pct']['seconds']} s. "
              f"Server peak memory: {u['server_peak_mib']['main']} MiB (largest worker "
              f"{u['server_peak_mib']['largest_worker']} MiB)."]
    return lines


def _targets_md(results: dict[str, Any]) -> list[str]:
    """Issue 17's targets against this run's figures."""
    top = next((b for b in results["balanced"] if b["log2"] == 16), None)
    u = results.get("unbalanced")
    rows = []
    if top:
        for peer, goal in (("ECDH-FOURQ", 1.0), ("openmined_psi", 4.0)):
            if peer in top["speedup"]:
                got = top["speedup"][peer]
                rows.append((f"2^16 balanced, end to end: {peer} s / ours s >= {goal}", f"{got:.2f}", got >= goal))
    if u:
        rate = u["epoch_precompute"]["keys_per_s"]
        rows += [("new key epoch precompute >= 60,000 keys/s", f"{rate:,}", rate >= 60_000),
                 ("unbalanced warm cache <= 0.15 s", str(u["warm_cache"]["wall_s"]), u["warm_cache"]["wall_s"] <= 0.15),
                 ("unbalanced cold cache <= 1.2 s", str(u["cold_cache"]["wall_s"]), u["cold_cache"]["wall_s"] <= 1.2),
                 (f"server with {u['server_records']:,} records < 1 GiB", f"{u['server_peak_mib']['main']} MiB",
                  u["server_peak_mib"]["main"] < 1024)]
    return ["## Issue 17's targets in this run", "", "| target | this run | met |", "|---|---:|---|",
            *(f"| {t} | {v} | {'yes' if ok else 'no'} |" for t, v, ok in rows)]


def _load(values: list[float] | None) -> str:
    return " / ".join(f"{v:.1f}" for v in values) if values else "?"


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Benchmarks ({results['cpus']} cores, {results['time']})", "",
             f"Backend of ours: `{results['backend']}`. The whole `make bench` took {results['total_s'] / 60:.1f} "
             f"minutes. {NOISE_NOTE} Load average (1, 5, 15 min) at the start "
             f"{_load(results.get('load_average_start'))}, at the end {_load(results.get('load_average_end'))}.", ""]
    lines += [*_targets_md(results), "", *_balanced_md(results)]
    if results.get("backends"):
        lines += ["", "## Batch calls per backend", "",
                  *bench_backends.markdown(results["backends"]["runs"], results["backends"]["machine"])
                  .splitlines()[2:]]
    if results.get("unbalanced"):
        lines += ["", *_unbalanced_md(results["unbalanced"])]
    if results.get("bulk"):
        lines += ["", "## Bulk: large balanced sets (OT-extension peers)", "",
                  "Bulk mode end to end over gRPC + mutual TLS (the server's list imported beforehand, its import "
                  "time beside), and SecretFlow's RR22 and KKRT on the same match keys, in the same run.", "",
                  *bulk.markdown(results["bulk"])]
    return "\n".join(lines) + "\n"


def charts(results: dict[str, Any]) -> list[Path]:
    import matplotlib  # noqa: PLC0415  (only the benchmark draws)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = results["balanced"]
    series: list[tuple[str, str, str]] = [("ours", "psi-match (gRPC, mutual TLS, cold server)", "o-"),
                                          ("openmined_psi", "openmined-psi (library calls)", "s--"),
                                          *((p, f"SecretFlow {p} (loopback)", ".:") for p in secretflow.PROTOCOLS)]
    paths = []
    for name, field, label in (("time", "seconds", "seconds (end to end)"), ("bytes", "bytes", "bytes on the wire")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for key, legend, style in series:
            points = [(b["records"], v) for b in rows if (v := _figure(b, key, field)) is not None]
            if points:
                ax.loglog(*zip(*points, strict=True), style, label=legend)
        ax.set_xlabel("records per side")
        ax.set_ylabel(label)
        ax.set_title(f"Balanced match on {results['cpus']} cores (ours: {results['backend'].split(' (')[0]} backend)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        path = RESULTS / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def _figure(row: dict[str, Any], key: str, field: str) -> float | None:
    """One system's seconds or bytes in a balanced row (None when it did not run or did not count)."""
    if key == "ours":
        o = row["ours"]
        return float(o["end_to_end_cold_s"] if field == "seconds" else o["bytes_sent"] + o["bytes_received"])
    run = row["openmined_psi"] if key == "openmined_psi" else row["secretflow"].get(key, {})
    value = run.get(field)
    return float(value) if value is not None else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also 2^18 and 2^20 records per side")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; medians are reported")
    parser.add_argument("--no-bulk", action="store_true", help="skip the bulk section (SecretFlow at 2^16, 2^20)")
    args = parser.parse_args()
    clock = time.perf_counter()
    sizes = [10, 12] if args.quick else [10, 12, 14, 16] + ([18, 20] if args.large else [])
    bulk_sizes = [10, 12] if args.quick else list(bulk.BULK_LOG2)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "machine": platform.platform(),
                               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "backend": backend.active().name, "repeat": args.repeat,
                               "load_average_start": os.getloadavg(), "balanced": []}
    RESULTS.mkdir(parents=True, exist_ok=True)
    worker_pool().start()  # workers up before timing, as the peer's library is loaded before its clock starts
    steps = len(sizes) + 2 + (not args.no_bulk)
    with Progress(console=console) as progress:
        task = progress.add_task("benchmarks", total=steps)
        for log2 in sizes:
            progress.update(task, description=f"balanced 2^{log2} x 2^{log2}")
            with tempfile.TemporaryDirectory() as tmp:
                results["balanced"].append(balanced(log2, Path(tmp), args.repeat))
            progress.advance(task)
        progress.update(task, description="batch calls per backend")
        results["backends"] = bench_backends.compare(2_000 if args.quick else 20_000)
        progress.advance(task)
        # The largest bulk list, imported once, also serves the unbalanced queries (after bulk mode, as
        # they change it): making and importing a million records takes minutes.
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            progress.update(task, description=f"lists of 2^{bulk_sizes[-1]} records, and their import")
            sized = [(sides, bulk.import_node(sides, work / f"node-2p{sides.log2}"))
                     for sides in (bulk.make_sides(log2, work) for log2 in bulk_sizes[-1 if args.no_bulk else 0:])]
            if not args.no_bulk:
                progress.update(task, description="bulk: ours, SecretFlow RR22 and KKRT")
                results["bulk"] = bulk.bulk_section(sized)
                progress.advance(task)
            progress.update(task, description=f"unbalanced 1,000 x 2^{bulk_sizes[-1]}")
            results["unbalanced"] = unbalanced(*sized[-1], 1000, work, args.repeat)
            progress.advance(task)
    results["total_s"] = round(time.perf_counter() - clock, 1)
    results["load_average_end"] = os.getloadavg()  # 1, 5, 15 minutes: how busy the shared host was
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(results))
    drawn = charts(results)
    console.print(markdown(results), soft_wrap=True, markup=False)
    console.print(f"written: {RESULTS / 'latest.json'}, {RESULTS / 'latest.md'}, " + ", ".join(map(str, drawn)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
