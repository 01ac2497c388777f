"""`psi audit ...`: what a data-protection officer runs, without touching matching data."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agency.audit.chain import Verifier, fingerprint
from agency.audit.export import export_case, verify_export
from agency.audit.prune import prune_log
from agency.audit.reconcile import reconcile
from agency.audit.report import (
    COLUMNS,
    DISCLOSURES,
    LISTING,
    Counts,
    Report,
    build_report,
    parse_day,
    to_csv,
    to_html,
    to_json,
)
from agency.audit.verify import UNSIGNED_LIMIT_SECONDS, Verdict, verify_log
from agency.audit.witness import consistency_proof, latest_checkpoint, read_bundle, state_path
from agency.config import NodeConfig, audit_signer, load_config
from agency.keys import public_key_path
from cli.display import csv_cell, make_console, plain
from client.api import ClientTls
from client.witness import add_checkpoint
from psi.errors import InputError

console = make_console()
_CONFIG_HELP = "this node's config file"
_PUBLIC_KEY_HELP = "your copy of the node's audit public key (PEM)"


def _verifier(path: Path, pinned: str | None = None, log: Path | None = None) -> Verifier:
    """The officer's key for `log`: a key file in the log's own folder counts only with its pinned fingerprint."""
    try:
        pem = path.read_text()
        verifier = Verifier(pem)
    except OSError as exc:
        raise InputError(f"cannot read the public key {path}: {exc.strerror}") from None
    except ValueError:
        raise InputError(f"{path} is not an Ed25519 public key (PEM)") from None
    if pinned is not None and fingerprint(pem) != pinned:
        raise InputError(f"the key {path} has fingerprint {fingerprint(pem)}, not the pinned {pinned}: "
                         "it is not the key this node's officer recorded (swapped?)")
    if pinned is None and log is not None and path.resolve().parent == log.resolve().parent:
        raise InputError(f"{path} lies beside the log: whoever can edit the log can replace it. Use your own "
                         "copy of the node's public key, or add --fingerprint (from `psi audit key`)")
    return verifier


def _day(text: str) -> dt.date:
    try:
        return parse_day(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date; use YYYY-MM-DD") from None


def verdict_text(verdict: Verdict) -> str:
    if verdict.problem:
        return f"NOT INTACT ({verdict.problem.kind}): {verdict.problem.message}"
    return (f"intact: {verdict.state.next_seq} entries, {verdict.state.checkpoints} signed checkpoints")


def _log(path: Path) -> Path:
    """`path`, if it is a file; an officer's typo is one line, not a traceback."""
    if not path.is_file():
        raise InputError(f"no audit log at {path}: give the path of a node's audit log (its data_dir/audit.log)")
    return path


def _verify(args: argparse.Namespace, log: Path) -> Verdict:
    _log(log)
    verifier = _verifier(args.public_key, args.fingerprint, log)
    witness_key = args.witness_key.read_text() if getattr(args, "witness_key", None) else None
    witnessed = [read_bundle(path, verifier, witness_key) for path in getattr(args, "witness", None) or ()]
    return verify_log(log, verifier, getattr(args, "checkpoint", None), node=args.node or "",
                      unsigned_limit=args.max_unsigned_seconds, witnessed=witnessed)


def cmd_verify(args: argparse.Namespace) -> int:
    verdict = _verify(args, args.log)
    print(f"{plain(str(args.log))}: {plain(verdict_text(verdict))}")
    for note in verdict.notes:
        print(f"note: {plain(note)}")
    return 0 if verdict.intact else 1


def cmd_key(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    signer = audit_signer(config)
    print(f"node {config.node_id} audit key {fingerprint(signer.public_pem())}")
    print(f"public key: {public_key_path(config.signing_key_path)} (give officers a copy and this fingerprint)")
    return 0


def _table(title: str, group: dict[str, Counts]) -> Table:
    table = Table(title=title)
    table.add_column("")
    for column in COLUMNS:
        table.add_column(column.replace("_", " "), justify="right")
    for key, counts in sorted(group.items()):
        table.add_row(plain(key), *(str(getattr(counts, c)) for c in COLUMNS))
    return table


def _rows_table(title: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(plain(str(row[c])) for c in columns))
    return table


def print_report(report: Report, sections: str = "all", out: Console = console, entries: bool = False) -> None:
    style = "bold" if report.intact else "bold white on red"
    out.print(f"verification: {plain(report.verdict)}", style=style, highlight=False)
    out.print(f"{report.entries} entries from {plain(report.first) or '-'} to {plain(report.last) or '-'}")
    for similar in report.lookalikes:
        out.print(f"[bold]case references that look alike:[/bold] {plain(' / '.join(similar))}")
    for name, title, group in (("partner", "Per partner", report.by_partner),
                               ("purpose", "Per purpose", report.by_purpose),
                               ("day", "Timeline (UTC days)", report.timeline)):
        if sections in ("all", name):
            out.print(_table(title, group))
    if entries:
        out.print(_rows_table("Queries and refusals", LISTING, report.listing))
    out.print(_rows_table("Disclosures (follow-up fields released)", DISCLOSURES, report.disclosures))


def cmd_report(args: argparse.Namespace) -> int:
    verdict = _verify(args, args.log) if args.public_key else None
    bodies = _bodies(args.log, verdict)
    report = build_report(bodies, start=args.start, end=args.end, partner=args.partner, case=args.case)
    if verdict is not None:
        report.verdict, report.intact = verdict_text(verdict), verdict.intact
    if args.format == "table":
        print_report(report, args.by, entries=args.entries)
    elif args.format == "csv":
        sys.stdout.write(to_csv(report, csv_cell))
    elif args.format == "json":
        print(to_json(report))
    else:
        page = to_html(report, args.log.name)
        (args.out.write_text(page, encoding="utf-8") if args.out else sys.stdout.write(page))
        if args.out:
            print(f"wrote {args.out}")
    return 0 if report.intact else 1


def _bodies(log: Path, verdict: Verdict | None) -> list[dict[str, Any]]:
    """Entry bodies, as far as the log verifies (or parses, when no key was given)."""
    if verdict is not None:
        return [body for _, body in verdict.state.entries]
    from agency.audit.verify import scan  # noqa: PLC0415  (unverified read, only on request)

    return [body for _, body in scan(_log(log).read_bytes()).entries]


def cmd_reconcile(args: argparse.Namespace) -> int:
    sides = []
    for log, key, pinned in ((args.client, args.client_key, args.client_fingerprint),
                             (args.server, args.server_key, args.server_fingerprint)):
        verdict = verify_log(_log(log), _verifier(key, pinned, log), unsigned_limit=args.max_unsigned_seconds)
        if not verdict.intact:
            print(f"{plain(str(log))}: {plain(verdict_text(verdict))}")
            return 1
        sides.append(verdict.state)
    client, server = sides
    result = reconcile((b for _, b in client.entries), (b for _, b in server.entries), client.node, server.node)
    print(f"{result.matched} queries of {plain(client.node)} to {plain(server.node)} are logged on both sides")
    for title, bodies in (("query.made with no entry at the answering node", result.missing_on_server),
                          ("served with no query.made at the querying node", result.missing_on_client),
                          ("refused before the answering node logged it (no counterpart expected)",
                           result.unanswered_refusals)):
        for body in bodies:
            print(f"{title}: request {plain(str(body.get('request_id')))} at {plain(str(body.get('time')))}, "
                  f"case {plain(str(body.get('case', '')))}")
    for made, other in result.disagreeing:
        print(f"the two sides disagree on request {plain(str(made.get('request_id')))}: {made.get('outcome')}/"
              f"{made.get('client_elements')} elements vs {other.get('operation')}/{other.get('client_elements')}")
    print("reconciled: clean" if result.clean else "NOT RECONCILED: entries missing or disagreeing (above)")
    return 0 if result.clean else 1


def witness_checkpoint(config: NodeConfig, target: str, tls: ClientTls, server_name: str | None = None) -> str:
    """Hand this node's latest checkpoint to the partner at `target`; returns what happened, for the officer."""
    signer = audit_signer(config)
    checkpoint = latest_checkpoint(config.audit_log_path, Verifier(signer.public_pem()))
    receipts = config.data_dir / "witness-receipts"  # the cosignatures received: this node's own evidence
    proof_from = checkpoint.count  # a first-time witness needs no proof; one that knows us answers its size
    for _ in range(2):
        proof = consistency_proof(config.audit_log_path, proof_from, checkpoint.count)
        reply = add_checkpoint(target, tls, log_public_key=signer.public_pem(), size=checkpoint.count,
                               head=checkpoint.head, time=checkpoint.time,
                               signature=bytes.fromhex(checkpoint.signature), proof_from=proof_from, proof=proof,
                               server_name=server_name)
        if isinstance(reply, int):
            proof_from = reply
            continue
        receipts.mkdir(parents=True, exist_ok=True)
        (receipts / f"{state_path(receipts, reply.witness).stem}.json").write_text(json.dumps(
            {"witness": reply.witness, "key": reply.public_key, "time": reply.timestamp, "size": checkpoint.count,
             "head": checkpoint.head.hex(), "cosignature": reply.signature.hex()}, indent=1))
        return f"{reply.witness} cosigned this node's audit log at {checkpoint.count} entries"
    raise InputError("the witness keeps changing its size; try again")


def cmd_witness(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    tls = ClientTls(config.tls.ca, config.tls.cert, config.tls.key)
    print(plain(witness_checkpoint(config, args.server, tls, args.server_name)))
    return 0


def cmd_witnessed(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    folder = config.data_dir / "witness"
    for path in sorted(folder.glob("*.json")) if folder.exists() else ():
        doc = json.loads(path.read_text())
        print(f"{plain(doc['origin'])}: cosigned at {doc['checkpoint']['count']} entries "
              f"(checkpoint of {plain(doc['checkpoint']['time'])}), key {fingerprint(doc['log_key'])}; bundle {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    bundle = export_case(_log(args.log), _verifier(args.public_key), args.case)
    text = json.dumps(bundle, indent=1, ensure_ascii=False)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {len([i for i in bundle['items'] if 'body' in i])} entries of case {args.case} to {args.out}")
    else:
        print(text)
    return 0


def cmd_verify_export(args: argparse.Namespace) -> int:
    try:
        bundle = json.loads(args.bundle.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the export {args.bundle}: {exc}") from None
    print(verify_export(bundle, _verifier(args.public_key)))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    result = prune_log(_log(args.log), audit_signer(config), config.node_id, args.before, args.operator,
                       before_seq=args.before_seq)
    print(f"pruned {result.pruned} entries (up to a signed checkpoint); {result.kept} kept "
          f"(from entry {result.first_kept_seq}); the pruning is itself logged and signed")
    return 0


def _add_key_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--public-key", type=Path, required=required, help=_PUBLIC_KEY_HELP)
    parser.add_argument("--fingerprint", help="the key's fingerprint as `psi audit key` printed it (SHA256:...)")
    parser.add_argument("--node", help="whose log it is (default: the first entry's node)")
    parser.add_argument("--max-unsigned-seconds", type=float, default=UNSIGNED_LIMIT_SECONDS,
                        help="how long entries may stay unsigned (the node's checkpoint timer, plus slack)")


def add_audit_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="verify and read audit logs").add_subparsers(dest="audit", required=True)

    verify = audit.add_parser("verify", help="check the chain, every signature, and what witnesses cosigned")
    verify.add_argument("log", type=Path, help="the audit log (the node's data_dir/audit.log)")
    _add_key_options(verify)
    verify.add_argument("--checkpoint", type=Path, help="latest checkpoint file (default: LOG.checkpoint)")
    verify.add_argument("--witness", type=Path, action="append",
                        help="a partner's witness bundle for this log (its data_dir/witness/NODE.json); repeatable")
    verify.add_argument("--witness-key", type=Path, help="the witness's public key, to pin its cosignature")
    verify.set_defaults(func=cmd_verify)

    key = audit.add_parser("key", help="this node's audit key fingerprint, for officers to pin")
    key.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    key.set_defaults(func=cmd_key)

    report = audit.add_parser("report", help="verdict, counts, each query, disclosures")
    report.add_argument("log", type=Path, help="the audit log to report on")
    _add_key_options(report, required=False)
    report.add_argument("--from", dest="start", type=_day, help="first UTC day (YYYY-MM-DD)")
    report.add_argument("--to", dest="end", type=_day, help="last UTC day (YYYY-MM-DD)")
    report.add_argument("--partner", help="only this partner's entries")
    report.add_argument("--case", help="only this case reference's entries")
    report.add_argument("--entries", action="store_true", help="list every query and refusal (table format)")
    report.add_argument("--format", choices=("table", "csv", "json", "html"), default="table",
                        help="table on screen; csv, json or an html page for other tools")
    report.add_argument("--out", type=Path, help="file for the html page (default: stdout)")
    report.add_argument("--by", choices=("all", "partner", "purpose", "day"), default="all",
                        help="which tables to print in table format")
    report.set_defaults(func=cmd_report)

    export = audit.add_parser("export", help="one case's entries, with proof they belong to the log")
    export.add_argument("log", type=Path, help="the audit log holding the case")
    export.add_argument("--case", required=True, help="the case reference to export")
    export.add_argument("--public-key", type=Path, required=True, help=_PUBLIC_KEY_HELP)
    export.add_argument("--out", type=Path, help="file for the bundle (JSON; default: stdout)")
    export.set_defaults(func=cmd_export)

    verify_exp = audit.add_parser("verify-export", help="check an exported case bundle")
    verify_exp.add_argument("bundle", type=Path, help="a bundle written by `psi audit export`")
    verify_exp.add_argument("--public-key", type=Path, required=True, help=_PUBLIC_KEY_HELP)
    verify_exp.set_defaults(func=cmd_verify_export)

    prune = audit.add_parser("prune", help="retention: drop entries up to a signed checkpoint (logged)")
    prune.add_argument("log", type=Path, help="the node's audit log")
    cut = prune.add_mutually_exclusive_group(required=True)
    cut.add_argument("--before", type=_day, help="up to the latest checkpoint signed before this UTC day")
    cut.add_argument("--before-seq", type=int, help="up to the latest checkpoint over at most this many entries")
    prune.add_argument("--config", type=Path, required=True, help="the node's config (its signing key)")
    prune.add_argument("--operator", default=getpass.getuser(), help="who prunes (for the audit log)")
    prune.set_defaults(func=cmd_prune)
    _add_witness_commands(audit)


def _add_witness_commands(audit: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rec = audit.add_parser("reconcile", help="compare a querying node's query.made with the answering node's log")
    for side in ("client", "server"):
        rec.add_argument(f"--{side}", type=Path, required=True, help=f"the {side} node's audit log")
        rec.add_argument(f"--{side}-key", type=Path, required=True, help="its audit public key")
        rec.add_argument(f"--{side}-fingerprint", help="that key's fingerprint as `psi audit key` printed it")
    rec.add_argument("--max-unsigned-seconds", type=float, default=UNSIGNED_LIMIT_SECONDS,
                     help="how long entries may stay unsigned (the nodes' checkpoint timer, plus slack)")
    rec.set_defaults(func=cmd_reconcile)

    witness = audit.add_parser("witness", help="hand this node's latest checkpoint to a partner to cosign")
    witness.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    witness.add_argument("--server", required=True, help="the partner's HOST:PORT")
    witness.add_argument("--server-name", help="the partner's certificate name, if not the host")
    witness.set_defaults(func=cmd_witness)

    witnessed = audit.add_parser("witnessed", help="the partners' checkpoints this node cosigned")
    witnessed.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    witnessed.set_defaults(func=cmd_witnessed)
