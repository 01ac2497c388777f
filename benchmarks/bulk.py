"""The `bulk` section of results/latest.json: large balanced lists, bulk mode against OT-extension peers.

    python benchmarks/bulk.py [--log2 16 20]

Per size, 2^k synthetic records a side (half of them on both lists, benchmarks/bench_match.py's
lists): ours is bulk mode end to end over loopback gRPC + mutual TLS (`MatchClient.bulk_match`
against `psi serve`, the list imported beforehand; the import is reported beside it), and
SecretFlow's RR22 and KKRT (benchmarks/peers/secretflow.py) on the same match keys as items.
The client runs in a process of its own, so its peak memory is the client's alone (with what its
forked key workers hold privately, sampled while they run).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pickle
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench_match import keys_of
from harness import BenchNode, make_node, serving, with_workers_peak
from peers import secretflow

from client.api import MatchClient
from demo.synthetic import make_lists

RESULTS = Path(__file__).resolve().parent / "results"
BULK_PROTOCOLS = ("RR22", "KKRT")
BULK_LOG2 = (16, 20)
# Bulk sessions are sized by cuckoo bins (about 1.27 per key): room for 2^20 records' keys.
PARTNER = ('\n[partners.bench-client]\nlists = ["wanted-persons"]\nmodes = ["intersection", "bulk"]\n'
           "max_query_size = 100000000\nbudget_per_epoch = 1000000000\n\n[limits]\nmax_query_size = 8388608\n")


@dataclass(frozen=True)
class Sides:
    """One size's synthetic lists, made once and pickled, so that each process of the run loads only its side."""

    log2: int
    client: Path  # list[Record]: the querying side
    server: Path  # list[Record]: the serving node's list
    overlap: Path  # frozenset of (client record id, server record id) of one person
    expected: Path  # set of (client record id, server reference): the hits a match must find
    items: Path  # (client keys, server keys): the match keys under the exact profile, the peers' items

    def load(self, part: str) -> Any:
        return pickle.loads(getattr(self, part).read_bytes())


def make_sides(log2: int, work: Path) -> Sides:
    """2^log2 records a side, half of them on both lists (benchmarks/bench_match.py's lists), under `work`."""
    n = 1 << log2
    lists = make_lists(n, n, n // 2, seed=log2)
    parts = ("client", "server", "overlap", "expected", "items")
    sides = Sides(log2, *(work / f"2p{log2}-{part}.pickle" for part in parts))
    refs = {r.record_id: r.reference for r in lists.b}
    for path, value in ((sides.client, lists.a), (sides.server, lists.b), (sides.overlap, lists.overlap),
                        (sides.expected, {(a, refs[b]) for a, b in lists.overlap}),
                        (sides.items, (keys_of(lists.a), keys_of(lists.b)))):
        path.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    return sides


def intersection_only(node: BenchNode) -> BenchNode:
    """`node` with a config of its own in which the partner may use intersection mode only."""
    config = node.config.with_name("intersection-only.toml")
    config.write_text(node.config.read_text().replace(PARTNER, PARTNER.replace(', "bulk"]', "]")))
    return replace(node, config=config)


def _import(sides: Sides, work: Path) -> BenchNode:
    return make_node(work, sides.load("server"), PARTNER)


def import_node(sides: Sides, work: Path) -> BenchNode:
    """The server's list imported into a node under `work`, in a child (its memory is not the client's)."""
    return _in_child(_import, sides, work)


def _client(sides: Sides, node: BenchNode) -> dict[str, Any]:
    """One bulk match of the client's list against the serving node, checked against the known overlap."""
    expected = sides.load("expected")
    records = sides.load("client")
    # The peak from here on is the client's (its records included) with its key workers' private memory;
    # VmHWM, not ru_maxrss, which a spawned process inherits from its parent.
    Path("/proc/self/clear_refs").write_text("5")
    with with_workers_peak() as peak, MatchClient(node.target, node.client_tls) as client:
        started = time.perf_counter()
        result = client.bulk_match(records, purpose="benchmark", case_reference="BENCH")
        seconds = time.perf_counter() - started
        traffic = client.traffic.sent + client.traffic.received
    if {(h.record_id, h.reference) for h in result.hits} != expected:
        raise SystemExit("bulk mode's result differs from the known overlap")
    return {"end_to_end_s": round(seconds, 3), "bytes": traffic, "client_peak_mib": round(peak.mib, 1),
            "keys_client": result.keys, "hits": len(result.hits)}


def _in_child(fn: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run_ours(sides: Sides, node: BenchNode) -> dict[str, Any]:
    """Bulk mode against `node` (a fresh import of `sides`' server list), the client in a child."""
    with serving(node) as server:
        ours = _in_child(_client, sides, node)
    return {**ours, "server_import_s": round(node.import_seconds, 2), "server_peak_mib": round(server.peak_mib, 1),
            "peak_mib": max(ours["client_peak_mib"], round(server.peak_mib, 1))}


def bulk_section(sized: Sequence[tuple[Sides, BenchNode]],
                 protocols: Sequence[str] = BULK_PROTOCOLS) -> list[dict[str, Any]]:
    """One entry per size: log2, keys, ours (end_to_end_s, bytes, peak_mib, ...), the peers and the ratios."""
    section = []
    for sides, node in sized:
        client, server = sides.load("items")
        entry: dict[str, Any] = {"log2": sides.log2, "keys": len(client), "secretflow": {}}
        for protocol in protocols:
            try:
                entry["secretflow"][protocol] = secretflow.run_secretflow(protocol, client, server)
            except secretflow.PeerUnavailableError as exc:
                entry["secretflow"][protocol] = {"skipped": str(exc)[:300]}
        del client, server
        ours = run_ours(sides, node)
        entry.update(ours=ours, end_to_end_s=ours["end_to_end_s"], bytes=ours["bytes"], peak_mib=ours["peak_mib"])
        entry["speedup"] = {p: round(r["seconds"] / ours["end_to_end_s"], 2)
                            for p, r in entry["secretflow"].items() if "seconds" in r}
        section.append(entry)
    return section


def markdown(section: list[dict[str, Any]]) -> list[str]:
    """The bulk table for latest.md."""
    protocols = list(dict.fromkeys(p for e in section for p in e["secretflow"]))
    lines = ["| records per side (keys) | ours s | ours bytes | ours peak MiB | server import s | "
             + " | ".join(f"SecretFlow {p} s (÷ ours)" for p in protocols) + " |",
             "|---:|---:|---:|---:|---:|" + "---:|" * len(protocols)]
    for e in section:
        o = e["ours"]
        cells = [f"{r['seconds']:.2f} ({e['speedup'][p]})" if "seconds" in r else "skipped"
                 for p, r in ((p, e["secretflow"].get(p, {})) for p in protocols)]
        lines.append(f"| 2^{e['log2']} ({e['keys']:,}) | {o['end_to_end_s']:.2f} | {o['bytes']:,} | "
                     f"{e['peak_mib']:.0f} | {o['server_import_s']:.1f} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2", type=int, nargs="+", default=list(BULK_LOG2))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sized = []
        for log2 in args.log2:
            sides = make_sides(log2, work)
            sized.append((sides, import_node(sides, work / f"node-2p{log2}")))
        section = bulk_section(sized)
    print(json.dumps(section, indent=1))
    print("\n".join(markdown(section)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
