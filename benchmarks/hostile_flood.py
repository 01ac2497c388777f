"""A bounded flood of hostile calls against a live node, while an honest partner keeps matching.

    .venv/bin/python benchmarks/hostile_flood.py [--seconds 20]

The node runs `psi serve` in its own process on 127.0.0.1 (mutual TLS). For `--seconds`, flooder
threads send every kind of hostile call of issue 12 (messages after finish, bursts after a refused
start, 1 MB strings, stalled and abandoned streams, a NUL-byte common name, a non-partner, parameter
and follow-up spam, session floods), while the honest partner matches again and again.
Reported (and written to benchmarks/results/hostile_flood.json): the node's threads and RSS
before and after (after a settling pause), and the honest match's latency quiet and under flood,
each match checked for the right hits. Not a timed unit test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import rbcl
from harness import ROOT, make_node, serving

from cli.pki import issue_certificate
from client.api import ClientTls, MatchClient
from demo.synthetic import make_lists
from psi.profiles import EXACT_PROFILE
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc

LISTS = make_lists(1000, 2000, 100, seed=12)
PARTNERS = """
[partners.bench-client]
lists = ["wanted-persons"]
modes = ["intersection", "cardinality"]
rate_per_minute = 100000

[partners.mallory]
lists = ["wanted-persons"]
modes = ["intersection", "cardinality"]
rate_per_minute = 1000000
budget_per_epoch = 1000000000
max_sessions = 4

[limits]
idle_seconds = 2
"""
HUGE = "x" * (1 << 20)
ELEMENT = rbcl.crypto_core_ristretto255_random()


def status(pid: int) -> tuple[int, float]:
    """(threads, RSS in MiB) of a live process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def start(total: int = 1, **changes: object) -> pb.EvaluateRequest:
    fields = {"mode": pb.MODE_INTERSECTION, "key_epoch": 1, "profile_id": EXACT_PROFILE.profile_id,
              "profile_hash": EXACT_PROFILE.definition_hash, "total_elements": total, "purpose": "flood",
              "case_reference": "F-1", "request_id": uuid.uuid4().hex} | changes
    return pb.EvaluateRequest(start=pb.SessionStart(**fields))  # type: ignore[arg-type]


def batch(index: int) -> pb.EvaluateRequest:
    return pb.EvaluateRequest(batch=pb.BlindedBatch(index=index, elements=ELEMENT))


FINISH = pb.EvaluateRequest(finish=pb.Finish())


def stalled() -> Iterator[pb.EvaluateRequest]:
    yield start(2)
    yield batch(0)
    time.sleep(3)  # past the node's idle limit of 2 s


def attacks(stub: pb_grpc.MatchingStub, strangers: list[pb_grpc.MatchingStub]) -> list[Callable[[], object]]:
    """Each kind of hostile call once; every one ends in a refusal or an abandoned stream."""
    def abandoned_tags() -> None:
        call = stub.StreamTags(pb.StreamTagsRequest(mode=pb.MODE_INTERSECTION, key_epoch=1))
        next(call)
        call.cancel()

    return [
        lambda: list(stub.Evaluate(iter([start(1), batch(0), FINISH, *(batch(1) for _ in range(50))]))),
        lambda: list(stub.Evaluate(iter([start(10**9), *(batch(0) for _ in range(50))]))),
        lambda: list(stub.Evaluate(iter([start(1, purpose=HUGE)]))),
        lambda: stub.GetParameters(pb.GetParametersRequest(list_id=HUGE)),
        lambda: stub.RequestFollowUp(pb.FollowUpRequest(reference="R", purpose=HUGE, case_reference="c",
                                                        officer="o", request_id=uuid.uuid4().hex)),
        lambda: stub.GetFollowUp(pb.GetFollowUpRequest(followup_id=HUGE)),
        lambda: stub.GetFollowUp(pb.GetFollowUpRequest(followup_id="unknown")),
        lambda: stub.GetParameters(pb.GetParametersRequest()),
        lambda: list(stub.Evaluate(stalled())),
        abandoned_tags,
        lambda: list(stub.Evaluate(iter([batch(0)]))),
        lambda: list(stub.Evaluate(iter([start(2), start(2)]))),
        *(lambda s=s: s.GetParameters(pb.GetParametersRequest()) for s in strangers),
        *(lambda s=s: list(s.Evaluate(iter([start(1)]))) for s in strangers),
    ]


def flood(stub: pb_grpc.MatchingStub, strangers: list[pb_grpc.MatchingStub], until: float,
          counts: dict[str, int]) -> None:
    for attack in itertools.cycle(attacks(stub, strangers)):
        if time.monotonic() > until:
            return
        try:
            attack()
            counts["answered"] = counts.get("answered", 0) + 1
        except grpc.RpcError as exc:
            counts[exc.code().name] = counts.get(exc.code().name, 0) + 1


def honest_match(target: str, tls: ClientTls, expected: set[tuple[str, str]]) -> tuple[float, bool]:
    began = time.perf_counter()
    with MatchClient(target, tls, partner="bench-server", timeout=120) as client:
        result = client.match(LISTS.a, purpose="honest", case_reference="H-1")
    return time.perf_counter() - began, {(h.record_id, h.reference) for h in result.hits} == expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flooders", type=int, default=4)
    args = parser.parse_args()
    refs = {r.record_id: r.reference for r in LISTS.b}
    expected = {(a, refs[b]) for a, b in LISTS.overlap}
    with tempfile.TemporaryDirectory() as tmp:
        node = make_node(Path(tmp), LISTS.b, PARTNERS)
        pki = Path(tmp) / "pki"
        for name, names in (("mallory", None), ("stranger", None), ("nul-cn", ("mallory\0x",))):
            issue_certificate(pki, name, common_names=names)

        def stub_for(name: str) -> pb_grpc.MatchingStub:
            tls = ClientTls(pki / "ca.pem", pki / f"{name}.pem", pki / f"{name}.key")
            return pb_grpc.MatchingStub(grpc.secure_channel(node.target, tls.credentials()))

        with serving(node) as server:
            pid = server.proc.pid
            quiet = [honest_match(node.target, node.client_tls, expected) for _ in range(4)][1:]  # warm first
            cold = status(pid)
            mallory, strangers = stub_for("mallory"), [stub_for("stranger"), stub_for("nul-cn")]
            # A short flood first: gRPC's handler pool and the allocator reach their working size, so
            # what follows measures what the flood leaves behind, not the pool's first growth.
            warm_up = [threading.Thread(target=flood, args=(mallory, strangers, time.monotonic() + 5, {}))
                       for _ in range(args.flooders)]
            for thread in warm_up:
                thread.start()
            for thread in warm_up:
                thread.join()
            time.sleep(5)
            threads_before, rss_before = status(pid)
            counts: dict[str, int] = {"answered": 0}
            until = time.monotonic() + args.seconds
            flooders = [threading.Thread(target=flood, args=(mallory, strangers, until, counts))
                        for _ in range(args.flooders)]
            for thread in flooders:
                thread.start()
            loaded = []
            while time.monotonic() < until:
                loaded.append(honest_match(node.target, node.client_tls, expected))
            peak_threads = status(pid)[0]
            for thread in flooders:
                thread.join()
            time.sleep(5)  # stalled streams time out, cancelled calls end
            threads_after, rss_after = status(pid)
    quiet_s = statistics.median(t for t, _ in quiet)
    loaded_s = statistics.median(t for t, _ in loaded)
    figures = {
        "seconds": args.seconds, "flooders": args.flooders, "hostile_calls": counts,
        "node_cold": {"threads": cold[0], "rss_mib": round(cold[1], 1)},
        "node_threads": {"before": threads_before, "peak_during": peak_threads, "after": threads_after},
        "node_rss_mib": {"before": round(rss_before, 1), "after": round(rss_after, 1)},
        "rss_change": round(rss_after / rss_before - 1, 3), "threads_change": threads_after - threads_before,
        "honest_match": {"records": len(LISTS.a), "quiet_median_s": round(quiet_s, 3),
                         "flood_median_s": round(loaded_s, 3), "flood_max_s": round(max(t for t, _ in loaded), 3),
                         "ratio": round(loaded_s / quiet_s, 2), "matches_during_flood": len(loaded),
                         "all_correct": all(ok for _, ok in quiet + loaded)},
    }
    out = ROOT / "benchmarks/results/hostile_flood.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
