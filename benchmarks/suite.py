"""`make bench`: speed, traffic and memory beside openmined-psi, in one run, on this machine.

    python benchmarks/suite.py [--large] [--quick]

Balanced matches at 2^10..2^16 records per side (2^18, 2^20 with --large),
end to end over loopback gRPC with mutual TLS and a cold server (its tags are
computed in the run), beside openmined-psi's library calls on the same items;
an unbalanced query of 1,000 records against 1,000,000 with a cold and a warm
client tag cache; the server's tag precompute rate (a new key epoch) and its
import rate; a 1% list update and the query after it. Writes results/latest.json,
results/latest.md and PNG charts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench_match import PARTNER, keys_of, run_openmined
from harness import ROOT, BenchNode, make_node, serving, tree_cpu_seconds, tree_peak_mib
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from agency.config import load_config
from client.api import MatchClient, Traffic, worker_pool
from demo.synthetic import make_lists
from psi.records import Record
from server.rotation import rotate_key
from server.watchlist import import_records

console = Console()
RESULTS = ROOT / "benchmarks" / "results"


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


def balanced(log2: int, work: Path) -> dict[str, Any]:
    n = 1 << log2
    lists = make_lists(n, n, n // 2, seed=log2)
    node = make_node(work, lists.b, PARTNER)
    with serving(node) as server:
        ours = _query(node, lists.a, _expected(lists.a, lists.b, lists.overlap), None, server.proc.pid)
        memory = tree_peak_mib(server.proc.pid)
    ours |= {"server_precompute_s": round(node.import_seconds, 3),
             "end_to_end_cold_s": round(node.import_seconds + ours["wall_s"], 3), "server_peak_mib": memory}
    peer = run_openmined(keys_of(lists.a), keys_of(lists.b))
    return {"log2": log2, "records": n, "ours": ours, "openmined_psi": peer,
            "speedup": round(peer["seconds"] / ours["end_to_end_cold_s"], 2)}


def unbalanced(server_records: int, client_records: int, work: Path) -> dict[str, Any]:
    lists = make_lists(client_records, server_records, client_records // 10, seed=99)
    node = make_node(work, lists.b, PARTNER)
    keys = sum(len(k) for k in map(_keys, lists.b))
    cache = work / "client-cache"
    expected = _expected(lists.a, lists.b, lists.overlap)
    out: dict[str, Any] = {"server_records": server_records, "client_records": client_records,
                           "server_keys": keys, "precompute_s": round(node.import_seconds, 2),
                           "precompute_keys_per_s": round(keys / node.import_seconds)}
    with serving(node) as server:
        client = MatchClient(node.target, node.client_tls, cache_dir=cache)  # an agency's long-running client
        out["cold_cache"] = _query(node, lists.a, expected, cache, server.proc.pid, client)
        out["warm_cache"] = _query(node, lists.a, expected, cache, server.proc.pid, client)
        out["warm_disk_cache_new_client"] = _query(node, lists.a, expected, cache, server.proc.pid)
        changed = [replace(r, reference=r.reference + "-u") for r in lists.b[: server_records // 100]]
        started = time.perf_counter()
        report = import_records(load_config(node.config), changed, "benchmark")
        out["update_1pct"] = {"records": len(changed), "keys_recomputed": report.match_keys,
                              "seconds": round(time.perf_counter() - started, 2)}
        refs = {r.record_id: r.reference for r in (*changed, *lists.b[len(changed):])}
        after = {(x, refs[y]) for x, y in lists.overlap}
        out["after_update_warm_cache"] = _query(node, lists.a, after, cache, server.proc.pid, client)
        client.close()
        out["server_peak_mib"] = tree_peak_mib(server.proc.pid)
    started, cpu = time.perf_counter(), tree_cpu_seconds(os.getpid())  # a new key epoch, from the stored keys
    rotation = rotate_key(load_config(node.config), "benchmark")
    seconds = time.perf_counter() - started
    out["epoch_precompute"] = {"keys": rotation.tags, "seconds": round(seconds, 2),
                               "cpu_s": round(tree_cpu_seconds(os.getpid()) - cpu, 2),
                               "keys_per_s": round(rotation.tags / seconds)}
    return out


def _keys(record: Record) -> list[bytes]:
    return keys_of([record])


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Benchmarks ({results['cpus']} cores, {results['time']})", "",
             "| records per side | keys | ours: precompute s | ours: match s | ours: end to end s | "
             "openmined-psi s | speedup | ours: bytes | openmined bytes | server peak MiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for b in results["balanced"]:
        o = b["ours"]
        lines.append(f"| 2^{b['log2']} | {o['keys']} | {o['server_precompute_s']} | {o['wall_s']} | "
                     f"{o['end_to_end_cold_s']} | {b['openmined_psi']['seconds']:.2f} | {b['speedup']} | "
                     f"{o['bytes_sent'] + o['bytes_received']:,} | {b['openmined_psi']['bytes']:,} | "
                     f"{o['server_peak_mib']['main']} |")
    u = results.get("unbalanced")
    if u:
        lines += ["", f"Unbalanced: {u['client_records']:,} client records against {u['server_records']:,} "
                  f"({u['server_keys']:,} server keys).", "",
                  "| step | wall s | bytes sent | bytes received |", "|---|---:|---:|---:|"]
        for step in ("cold_cache", "warm_cache", "warm_disk_cache_new_client", "after_update_warm_cache"):
            s = u[step]
            lines.append(f"| {step.replace('_', ' ')} | {s['wall_s']} | {s['bytes_sent']:,} | "
                         f"{s['bytes_received']:,} |")
        e = u["epoch_precompute"]
        lines += ["", f"Server tag precompute for a new key epoch (`psi keys rotate`, storage included): "
                  f"{e['keys_per_s']:,} keys/s ({e['keys']:,} keys in {e['seconds']} s, {e['cpu_s']} CPU s). "
                  f"Import of the list from records (match keys, HashToGroup, tags, storage): "
                  f"{u['precompute_keys_per_s']:,} keys/s ({u['precompute_s']} s). "
                  f"1% update: {u['update_1pct']['records']:,} records, "
                  f"{u['update_1pct']['keys_recomputed']:,} keys recomputed in {u['update_1pct']['seconds']} s. "
                  f"Server peak memory: {u['server_peak_mib']['main']} MiB (largest worker "
                  f"{u['server_peak_mib']['largest_worker']} MiB)."]
    return "\n".join(lines) + "\n"


def charts(results: dict[str, Any]) -> list[Path]:
    import matplotlib  # noqa: PLC0415  (only the benchmark draws)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sizes = [b["records"] for b in results["balanced"]]
    paths = []
    for name, ours, theirs, label in (
        ("time", [b["ours"]["end_to_end_cold_s"] for b in results["balanced"]],
         [b["openmined_psi"]["seconds"] for b in results["balanced"]], "seconds (end to end)"),
        ("bytes", [b["ours"]["bytes_sent"] + b["ours"]["bytes_received"] for b in results["balanced"]],
         [b["openmined_psi"]["bytes"] for b in results["balanced"]], "bytes on the wire"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(sizes, ours, "o-", label="psi-match (gRPC, mutual TLS, cold server)")
        ax.loglog(sizes, theirs, "s--", label="openmined-psi (library calls)")
        ax.set_xlabel("records per side")
        ax.set_ylabel(label)
        ax.set_title(f"Balanced match on {results['cpus']} cores")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        path = RESULTS / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also 2^18 and 2^20 records per side")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    args = parser.parse_args()
    sizes = [10, 12] if args.quick else [10, 12, 14, 16] + ([18, 20] if args.large else [])
    server_records = 10_000 if args.quick else 1_000_000
    results: dict[str, Any] = {"cpus": os.cpu_count(), "machine": platform.platform(),
                               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "balanced": []}
    RESULTS.mkdir(parents=True, exist_ok=True)
    worker_pool().start()  # workers up before timing, as the peer's library is loaded before its clock starts
    with Progress(console=console) as progress:
        task = progress.add_task("benchmarks", total=len(sizes) + 1)
        for log2 in sizes:
            progress.update(task, description=f"balanced 2^{log2} x 2^{log2}")
            with tempfile.TemporaryDirectory() as tmp:
                results["balanced"].append(balanced(log2, Path(tmp)))
            progress.advance(task)
        progress.update(task, description=f"unbalanced 1,000 x {server_records:,}")
        with tempfile.TemporaryDirectory() as tmp:
            results["unbalanced"] = unbalanced(server_records, 1000, Path(tmp))
        progress.advance(task)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(results))
    drawn = charts(results)
    table = Table(title=f"balanced matches, {results['cpus']} cores")
    for column in ("records/side", "ours s", "openmined s", "speedup"):
        table.add_column(column, justify="right")
    for b in results["balanced"]:
        table.add_row(f"2^{b['log2']}", str(b["ours"]["end_to_end_cold_s"]), f"{b['openmined_psi']['seconds']:.2f}",
                      str(b["speedup"]))
    console.print(table)
    console.print(markdown(results).split("\n\n", 2)[-1])
    console.print(f"written: {RESULTS / 'latest.json'}, {RESULTS / 'latest.md'}, " + ", ".join(map(str, drawn)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
