"""Load: N concurrent clients with repeated queries against one node (loopback, mutual TLS).

    python benchmarks/load_test.py [--clients 20] [--queries 5] [--records 1000]

Every result is checked against the known overlap; writes throughput and the
server's peak memory to benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import ROOT, make_node, peak_rss_mib, serving
from rich.console import Console
from rich.table import Table

from client.api import MatchClient
from demo.synthetic import make_lists

console = Console()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--queries", type=int, default=5, help="queries per client")
    parser.add_argument("--records", type=int, default=1000, help="records per list")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/load.json")
    args = parser.parse_args()
    lists = make_lists(args.records, args.records, args.records // 5, seed=7)
    refs = {r.record_id: r.reference for r in lists.b}
    expected = {(a, refs[b]) for a, b in lists.overlap}
    query = lists.a[: max(1, args.records // 10)]  # each client asks about a tenth of its list
    expected_small = {pair for pair in expected if pair[0] in {r.record_id for r in query}}
    partner = ('\n[partners.bench-client]\nlists = ["wanted-persons"]\nmodes = ["intersection"]\n'
               f"rate_per_minute = 1000000\nmax_sessions = {args.clients * 2}\nbudget_per_epoch = 1000000000\n")
    with tempfile.TemporaryDirectory() as tmp:
        node = make_node(Path(tmp), lists.b, partner)
        with serving(node) as server, console.status(f"{args.clients} clients x {args.queries} queries"):
            def one_client(n: int) -> tuple[int, int, int]:
                ok = failed = elements = 0
                with MatchClient(node.target, node.client_tls, timeout=600) as client:
                    for q in range(args.queries):
                        result = client.match(query, purpose="load test", case_reference=f"LOAD-{n}-{q}")
                        elements += result.keys
                        good = {(h.record_id, h.reference) for h in result.hits} == expected_small
                        ok, failed = ok + good, failed + (not good)
                return ok, failed, elements

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.clients) as pool:
                outcomes = list(pool.map(one_client, range(args.clients)))
            seconds = time.perf_counter() - started
        ok, failed, elements = (sum(x) for x in zip(*outcomes, strict=True))
    figures = {
        "clients": args.clients, "queries_per_client": args.queries, "server_records": args.records,
        "records_per_query": len(query), "queries_ok": ok, "queries_wrong": failed, "seconds": round(seconds, 2),
        "queries_per_second": round((ok + failed) / seconds, 2),
        "elements_per_second": round(elements / seconds), "server_peak_rss_mib": round(server.peak_mib, 1),
        "client_process_peak_rss_mib": round(peak_rss_mib(), 1), "cpus": os.cpu_count(),
        "machine": platform.platform(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    table = Table(title="load test (loopback, mutual TLS)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, str(value))
    console.print(table)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
