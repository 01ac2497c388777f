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

from agency.audit.chain import Verifier
from agency.audit.export import export_case, verify_export
from agency.audit.prune import prune_log
from agency.audit.report import COLUMNS, Counts, Report, build_report, parse_day, to_csv, to_html, to_json
from agency.audit.verify import Verdict, verify_log
from agency.config import load_config
from agency.keys import load_or_create_signing_key
from psi.errors import InputError

console = Console()


def _verifier(path: Path) -> Verifier:
    try:
        return Verifier(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read the public key {path}: {exc.strerror}") from None
    except ValueError:
        raise InputError(f"{path} is not an Ed25519 public key (PEM)") from None


def _day(text: str) -> dt.date:
    try:
        return parse_day(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date; use YYYY-MM-DD") from None


def verdict_text(verdict: Verdict) -> str:
    if verdict.problem:
        return f"NOT INTACT: {verdict.problem.message}"
    return (f"intact: {verdict.state.next_seq} entries, {verdict.state.checkpoints} signed checkpoints")


def cmd_verify(args: argparse.Namespace) -> int:
    verdict = verify_log(args.log, _verifier(args.public_key), args.checkpoint)
    for warning in verdict.warnings:
        print(f"warning: {warning}")
    print(f"{args.log}: {verdict_text(verdict)}")
    return 0 if verdict.intact else 1


def _table(title: str, group: dict[str, Counts]) -> Table:
    table = Table(title=title)
    table.add_column("")
    for column in COLUMNS:
        table.add_column(column.replace("_", " "), justify="right")
    for key, counts in sorted(group.items()):
        table.add_row(key, *(str(getattr(counts, c)) for c in COLUMNS))
    return table


def print_report(report: Report, sections: str = "all", out: Console = console) -> None:
    out.print(f"{report.entries} entries from {report.first or '-'} to {report.last or '-'}")
    for name, title, group in (("partner", "Per partner", report.by_partner),
                               ("purpose", "Per purpose", report.by_purpose),
                               ("day", "Timeline (UTC days)", report.timeline)):
        if sections in ("all", name):
            out.print(_table(title, group))


def cmd_report(args: argparse.Namespace) -> int:
    verdict = verify_log(args.log, _verifier(args.public_key)) if args.public_key else None
    bodies = _bodies(args.log, verdict)
    report = build_report(bodies, start=args.start, end=args.end, partner=args.partner)
    if args.format == "table":
        if verdict:
            console.print(f"verification: {verdict_text(verdict)}", highlight=False)
        print_report(report, args.by)
    elif args.format == "csv":
        sys.stdout.write(to_csv(report))
    elif args.format == "json":
        print(to_json(report))
    else:
        page = to_html(report, args.log.name, verdict_text(verdict) if verdict else "not checked (no --public-key)")
        (args.out.write_text(page, encoding="utf-8") if args.out else sys.stdout.write(page))
        if args.out:
            print(f"wrote {args.out}")
    return 0 if verdict is None or verdict.intact else 1


def _bodies(log: Path, verdict: Verdict | None) -> list[dict[str, Any]]:
    """Entry bodies, as far as the log verifies (or parses, when no key was given)."""
    if verdict is not None:
        return [body for _, body in verdict.state.entries]
    from agency.audit.verify import scan  # noqa: PLC0415  (unverified read, only on request)

    return [body for _, body in scan(log.read_bytes()).entries]


def cmd_export(args: argparse.Namespace) -> int:
    bundle = export_case(args.log, _verifier(args.public_key), args.case)
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
    result = prune_log(args.log, load_or_create_signing_key(config.signing_key_path), config.node_id,
                       args.before, args.operator)
    print(f"pruned {result.pruned} entries before {args.before}; {result.kept} kept "
          f"(from entry {result.first_kept_seq}); the pruning is itself logged and signed")
    return 0


def add_audit_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="verify and read audit logs").add_subparsers(dest="audit", required=True)

    verify = audit.add_parser("verify", help="check the chain and every signature")
    verify.add_argument("log", type=Path)
    verify.add_argument("--public-key", type=Path, required=True, help="the node's audit-signing.pub.pem")
    verify.add_argument("--checkpoint", type=Path, help="latest checkpoint file (default: LOG.checkpoint)")
    verify.set_defaults(func=cmd_verify)

    report = audit.add_parser("report", help="counts per partner, per purpose and per day")
    report.add_argument("log", type=Path)
    report.add_argument("--public-key", type=Path, help="verify first and report only verified entries")
    report.add_argument("--from", dest="start", type=_day, help="first UTC day (YYYY-MM-DD)")
    report.add_argument("--to", dest="end", type=_day, help="last UTC day (YYYY-MM-DD)")
    report.add_argument("--partner")
    report.add_argument("--format", choices=("table", "csv", "json", "html"), default="table")
    report.add_argument("--out", type=Path, help="file for the html page (default: stdout)")
    report.add_argument("--by", choices=("all", "partner", "purpose", "day"), default="all",
                        help="which tables to print in table format")
    report.set_defaults(func=cmd_report)

    export = audit.add_parser("export", help="one case's entries, with proof they belong to the log")
    export.add_argument("log", type=Path)
    export.add_argument("--case", required=True)
    export.add_argument("--public-key", type=Path, required=True)
    export.add_argument("--out", type=Path)
    export.set_defaults(func=cmd_export)

    verify_exp = audit.add_parser("verify-export", help="check an exported case bundle")
    verify_exp.add_argument("bundle", type=Path)
    verify_exp.add_argument("--public-key", type=Path, required=True)
    verify_exp.set_defaults(func=cmd_verify_export)

    prune = audit.add_parser("prune", help="retention: drop entries before a date (signed and logged)")
    prune.add_argument("log", type=Path)
    prune.add_argument("--before", type=_day, required=True)
    prune.add_argument("--config", type=Path, required=True, help="the node's config (its signing key)")
    prune.add_argument("--operator", default=getpass.getuser())
    prune.set_defaults(func=cmd_prune)
