"""A balanced match end to end over loopback gRPC with mutual TLS, beside openmined-psi, in one run.

    python benchmarks/bench_match.py [--log2 14] [--out benchmarks/results/match.json]

Both systems get the same sets: 2^N records per side, half of them shared,
and the same items (each record's match keys under the exact profile).
Ours: the server imports its list (cold: its tags are computed here) in its
own process, and the client matches through the Python API. openmined-psi:
its library calls in this process, no network (what its users would run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from harness import ROOT, make_node, peak_rss_mib, serving
from rich.console import Console
from rich.table import Table

from client.api import MatchClient, worker_pool
from demo.synthetic import make_lists
from psi.profiles import EXACT_PROFILE
from psi.records import Record

console = Console()
PARTNER = ('\n[partners.bench-client]\nlists = ["wanted-persons"]\nmodes = ["intersection"]\n'
           "max_query_size = 100000000\nbudget_per_epoch = 1000000000\n")


def keys_of(records: list[Record]) -> list[bytes]:
    return [k.value for r in records for k in EXACT_PROFILE.match_keys(r)]


def run_ours(a: list[Record], b: list[Record], expected: set[tuple[str, str]], work: Path) -> dict[str, float]:
    node = make_node(work, b, PARTNER)  # imports the list: computes the server's tags (cold cache)
    with serving(node) as server, MatchClient(node.target, node.client_tls) as client:
        started = time.perf_counter()
        result = client.match(a, purpose="benchmark", case_reference="BENCH")
        match_s = time.perf_counter() - started
        params = client.parameters()
    if {(h.record_id, h.reference) for h in result.hits} != expected:
        raise SystemExit("our result differs from the known overlap")
    return {"server_precompute_s": node.import_seconds, "match_s": match_s,
            "end_to_end_cold_s": node.import_seconds + match_s, "keys_client": result.keys,
            "keys_server": params.tag_count, "tag_length": params.tag_length,
            "approx_bytes": 2 * 32 * result.keys + params.tag_count * (params.tag_length + 16 + 24),
            "server_peak_rss_mib": server.peak_mib, "hits": len(result.hits)}


def run_openmined(client_items: list[bytes], server_items: list[bytes]) -> dict[str, float]:
    import private_set_intersection.python as om  # noqa: PLC0415  (only the benchmark needs the peer)

    started = time.perf_counter()
    client = om.client.CreateWithNewKey(True)
    server = om.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(1e-9, len(client_items), [x.hex() for x in server_items],
                                      om.DataStructure.RAW)
    request = client.CreateRequest([x.hex() for x in client_items])
    response = server.ProcessRequest(request)
    found = client.GetIntersection(setup, response)
    seconds = time.perf_counter() - started
    size = sum(len(m.SerializeToString()) for m in (setup, request, response))
    return {"seconds": seconds, "bytes": size, "intersection": len(found)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2", type=int, default=14)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/match.json")
    args = parser.parse_args()
    n = 1 << args.log2
    worker_pool().start()  # workers up before timing, as the peer's library is loaded before its clock starts
    lists = make_lists(n, n, n // 2, seed=args.log2)
    refs = {r.record_id: r.reference for r in lists.b}
    expected = {(a, refs[b]) for a, b in lists.overlap}
    client_items, server_items = keys_of(lists.a), keys_of(lists.b)
    with console.status(f"ours: 2^{args.log2} x 2^{args.log2} over gRPC + mutual TLS"), \
            tempfile.TemporaryDirectory() as tmp:
        ours = run_ours(lists.a, lists.b, expected, Path(tmp))
    with console.status("openmined-psi on the same items"):
        peer = run_openmined(client_items, server_items)
    if peer["intersection"] != len(set(client_items) & set(server_items)):
        raise SystemExit("openmined-psi's intersection size is not the plain intersection's")
    ratio = peer["seconds"] / ours["end_to_end_cold_s"]
    figures = {"log2": args.log2, "records_per_side": n, "ours": ours, "openmined_psi": peer,
               "speedup_vs_openmined": ratio, "client_process_peak_rss_mib": peak_rss_mib(),
               "cpus": os.cpu_count(), "machine": platform.platform(),
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    table = Table(title=f"balanced match, 2^{args.log2} records per side ({len(client_items)} keys), "
                        f"{os.cpu_count()} cores")
    for column in ("system", "wall s", "us per key", "bytes"):
        table.add_column(column, justify="right")
    keys = len(client_items)
    table.add_row("ours: server precompute", f"{ours['server_precompute_s']:.2f}", "", "")
    table.add_row("ours: match over gRPC", f"{ours['match_s']:.2f}", "", f"~{ours['approx_bytes']:,}")
    table.add_row("ours: end to end (cold)", f"{ours['end_to_end_cold_s']:.2f}",
                  f"{1e6 * ours['end_to_end_cold_s'] / keys:.0f}", "")
    table.add_row("openmined-psi (no network)", f"{peer['seconds']:.2f}", f"{1e6 * peer['seconds'] / keys:.0f}",
                  f"{peer['bytes']:,}")
    console.print(table)
    console.print(f"openmined-psi time / ours = {ratio:.2f}  (written to {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
