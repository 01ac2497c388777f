"""`make demo`: two agencies on loopback, mutual TLS, private matching both ways.

Creates a development PKI, two nodes with synthetic lists of 1,200 and
1,000 records sharing 150 persons, runs A->B and B->A with the `psi`
command, checks the hits against the known overlap and stops the nodes.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from rich.table import Table

from agency.config import render_config
from cli.display import make_console
from cli.main import HIT_COLUMNS
from client.api import ClientTls, wait_for_node
from demo.synthetic import make_lists
from psi.record_parsing import format_csv, format_jsonl

WORK = Path(__file__).resolve().parent / "work"
PSI = [sys.executable, "-m", "cli.main"]
console = make_console()



def heading(title: str) -> None:
    """A step's title: a rule on a terminal, one plain line in a log (a rule would span the unwrapped width)."""
    if console.is_terminal:
        console.rule(title)
    else:
        console.print(f"== {title} ==", highlight=False)

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str) -> str:
    wide = {**os.environ, "COLUMNS": "150"}  # tables of the captured commands at a readable width
    done = subprocess.run([*PSI, *args], check=True, capture_output=True, text=True, env=wide)
    return done.stdout.strip()


def show_hits(path: Path, title: str, limit: int = 5) -> tuple[set[tuple[str, str]], int]:
    """Print the first hits as a table; return the confirmed (strong or medium) pairs
    (local id, partner reference) and the number of weak-only hits left for a person to check."""
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    table = Table(title=f"{title}: first {min(limit, len(rows))} of {len(rows)} hits")
    shown = [c for c in HIT_COLUMNS if c != "followup_key"]
    for column in shown:
        table.add_column(column)
    for row in rows[:limit]:
        table.add_row(*(row[c] for c in shown))
    console.print(table)
    confirmed = {(row["local_id"], row["partner_reference"]) for row in rows if row["strength"] != "weak"}
    return confirmed, sum(1 for row in rows if row["strength"] == "weak")


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    heading("1. development PKI")
    console.print(run("pki", "init", "--out", str(WORK / "pki"), "agency-a", "agency-b"))
    lists = make_lists(1200, 1000, overlap=150, seed=2026)
    files = {"agency-a": WORK / "agency-a.csv", "agency-b": WORK / "agency-b.jsonl"}
    files["agency-a"].write_text(format_csv(lists.a), encoding="utf-8")
    files["agency-b"].write_text(format_jsonl(lists.b), encoding="utf-8")
    ports = {"agency-a": free_port(), "agency-b": free_port()}
    configs = {}
    heading("2. import the watchlists")
    for node, port in ports.items():
        config = WORK / f"{node}.toml"
        partner = next(p for p in ports if p != node)
        config.write_text(render_config(node, f"127.0.0.1:{port}", f"data-{node}", "pki/ca.pem",
                                        f"pki/{node}.pem", f"pki/{node}.key", partners=(partner,)))
        configs[node] = config
        console.print(f"{node}: " + run("watchlist", "import", str(files[node]), "--config", str(config),
                                          "--quiet"))
    heading("3. start both nodes (mutual TLS, 127.0.0.1)")
    ok = True
    procs = {node: subprocess.Popen([*PSI, "serve", "--config", str(configs[node]), "--quiet"],
                                    stdout=subprocess.DEVNULL, stderr=(WORK / f"{node}.log").open("w"))
             for node in ports}
    try:
        for node, port in ports.items():
            partner = next(p for p in ports if p != node)  # a node answers its partners only
            tls = ClientTls(WORK / "pki/ca.pem", WORK / f"pki/{partner}.pem", WORK / f"pki/{partner}.key")
            wait_for_node(f"127.0.0.1:{port}", tls, alive=lambda p=procs[node]: p.poll() is None)
            console.print(f"{node} is serving on 127.0.0.1:{port}")
        reference = {r.record_id: r.reference for r in (*lists.a, *lists.b)}
        expected = {
            "agency-a": {(a, reference[b]) for a, b in lists.overlap},
            "agency-b": {(b, reference[a]) for a, b in lists.overlap},
        }
        for me, partner in (("agency-a", "agency-b"), ("agency-b", "agency-a")):
            heading(f"4. {me} matches its list against {partner}")
            out = WORK / f"hits-{me}.csv"
            summary = run("match", "--server", f"127.0.0.1:{ports[partner]}", "--input", str(files[me]),
                          "--out", str(out), "--config", str(configs[me]), "--purpose",
                          "demo: cross-border wanted-person check", "--case", "DEMO-2026-001",
                          "--operator", f"officer@{me}", "--quiet")
            console.print(summary)
            confirmed, weak = show_hits(out, f"{me} -> {partner}")
            correct = confirmed == expected[me]
            ok &= correct
            console.print(f"strong and medium hits equal the {len(expected[me])} known overlapping persons: "
                          f"{'[green]yes[/green]' if correct else '[red]NO[/red]'}; {weak} weak-only hits "
                          "(same name skeleton and birth year) are leads for a person to confirm")
        heading(f"5. {'all results correct' if ok else 'results differ from the known overlap'}")
        ok &= show_followup(configs, ports)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for node, proc in procs.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            console.print(f"{node} stopped (exit code {proc.returncode})")
    return 0 if ok and show_audit(list(ports)) else 1


def show_followup(configs: dict[str, Path], ports: dict[str, int]) -> bool:
    """Agency A asks about its first hit; B's officer releases two fields; A receives them."""
    heading("6. follow-up: agency-a asks agency-b about its first hit")
    with (WORK / "hits-agency-a.csv").open(encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    b_server = f"127.0.0.1:{ports['agency-b']}"
    asked = run("followup", "request", "--server", b_server, "--config", str(configs["agency-a"]),
                "--hits", str(WORK / "hits-agency-a.csv"), "--reference", first["partner_reference"],
                "--purpose", "confirm identity before arrest (Art. 7 LED)", "--case", "DEMO-2026-001",
                "--officer", "officer@agency-a", "--message", "please confirm name and date of birth")
    console.print(asked, highlight=False)
    followup_id = asked.split()[1].rstrip(":")
    console.print(run("followup", "list", "--config", str(configs["agency-b"])))
    console.print(run("followup", "approve", followup_id, "--fields", "name,birth_date",
                      "--config", str(configs["agency-b"]), "--officer", "officer@agency-b"), highlight=False)
    answer = run("followup", "status", followup_id, "--server", b_server, "--config", str(configs["agency-a"]))
    console.print(answer, highlight=False)
    return "APPROVED" in answer and "birth_date" in answer


def show_audit(nodes: list[str]) -> bool:
    """What each node's data-protection officer sees: verification against the partner's witness,
    both sides of every query reconciled, and a report listing each query."""
    intact = True
    keys = {node: WORK / f"audit-keys/{node}.pub.pem" for node in nodes}  # the officers' pinned copies
    logs = {node: WORK / f"data-{node}/audit.log" for node in nodes}
    for node in nodes:
        partner = next(p for p in nodes if p != node)
        heading(f"7. audit log of {node}, as its data-protection officer checks it")
        bundle = WORK / f"data-{partner}/witness/{node}.json"  # what the partner cosigned after each match
        verify = subprocess.run([*PSI, "audit", "verify", str(logs[node]), "--public-key", str(keys[node]),
                                 "--witness", str(bundle)], capture_output=True, text=True, check=False)
        console.print(verify.stdout.strip(), highlight=False)
        intact &= verify.returncode == 0
        console.print(run("audit", "report", str(logs[node]), "--public-key", str(keys[node]), "--by", "partner",
                          "--entries"))
        page = WORK / f"audit-report-{node}.html"
        run("audit", "report", str(logs[node]), "--public-key", str(keys[node]), "--format", "html",
            "--out", str(page))
        console.print(f"HTML report with a timeline chart: {page}")
        heading(f"8. {node}'s queries, reconciled with {partner}'s log")
        rec = subprocess.run([*PSI, "audit", "reconcile", "--client", str(logs[node]), "--client-key",
                              str(keys[node]), "--server", str(logs[partner]), "--server-key", str(keys[partner])],
                             capture_output=True, text=True, check=False)
        console.print(rec.stdout.strip(), highlight=False)
        intact &= rec.returncode == 0
    return intact


if __name__ == "__main__":
    sys.exit(main())
