"""The `psi` command line: node administration and matching.

    psi pki init --out pki agency-a agency-b
    psi watchlist import FILE --config node.toml
    psi serve --config node.toml
    psi match --server HOST:PORT --input FILE --out hits.csv --config node.toml \\
              --purpose "..." --case REF
"""

from __future__ import annotations

import argparse
import csv
import getpass
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from agency.audit.log import AuditLog
from agency.config import load_config, open_audit_log
from agency.keys import load_or_create_signing_key
from cli.audit import add_audit_commands, witness_checkpoint
from cli.display import csv_cell
from cli.followup import add_followup_commands
from cli.pki import init_pki
from cli.record_files import read_records
from client.api import ClientTls, MatchClient, ProgressCallback
from psi.client_query import MatchResult
from psi.errors import InputError, PsiError
from psi.messages import Mode
from psi.profiles import PROFILES, Profile, Strength
from psi.workers import WorkerPool
from server.app import serve
from server.rotation import init_key, rotate_key
from server.watchlist import erase_records, import_records

console = Console(stderr=True)

_MAX_JUSTIFICATION = 512  # characters: a reason, not a document
HIT_COLUMNS = ("local_id", "partner_reference", "category", "matched_rules", "strength", "followup_key")


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressCallback]:
    """A callback `(stage, done, total)` drawing one bar per stage on stderr."""
    bar = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, disable=not enabled, transient=False)
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield update


def _store_progress(label: str, update: ProgressCallback) -> Callable[[int, int], None]:
    return lambda done, total: update(label, done, total)


def cmd_pki_init(args: argparse.Namespace) -> int:
    issued = init_pki(args.out, args.nodes)
    for node_id, creds in issued.items():
        print(f"{node_id}: {creds.cert} {creds.key}")
    print(f"CA: {args.out / 'ca.pem'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    with progress_bar(not args.quiet) as update:
        serve(config, _store_progress("tags", update), args.operator, args.justification)
    return 0


def cmd_watchlist_import(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with WorkerPool() as pool, progress_bar(not args.quiet) as update:
        update("read", 0, 1)  # on screen at once, while a large file is parsed
        records = read_records(args.file, args.format, require_reference=True)
        update("read", 1, 1)
        if not records and not args.allow_empty:
            raise InputError(f"{args.file} holds no records; nothing was imported "
                             "(pass --allow-empty to record an empty import)")
        report = import_records(config, records, args.operator, _store_progress("import", update), pool,
                                args.justification)
    print(f"read {report.records} records: {report.added} new, {report.updated} updated, "
          f"{report.unchanged} unchanged ({report.match_keys} match keys computed); "
          f"list '{config.list_id}' holds {report.list_size} records, version {report.list_version}")
    return 0


def cmd_watchlist_erase(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    erased = erase_records(config, args.ids, args.operator, args.justification)
    missing = sorted(set(args.ids) - set(erased))
    print(f"erased {len(erased)} records" + (f"; not on the list: {', '.join(missing)}" if missing else ""))
    return 0


def cmd_keys_init(args: argparse.Namespace) -> int:
    epoch, fingerprint = init_key(load_config(args.config), args.operator)
    print(f"OPRF key epoch {epoch}, fingerprint {fingerprint}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with WorkerPool() as pool, progress_bar(not args.quiet) as update:
        rotation = rotate_key(config, args.operator, _store_progress("tags", update), pool)
    print(f"key epoch {rotation.old_epoch} -> {rotation.new_epoch}: {rotation.tags} tags recomputed, "
          "the old epoch's tags dropped; partners must fetch the parameters again")
    return 0


def write_hits(path: Path, result: MatchResult) -> None:
    """The hits as CSV; references and categories are the partner's text, so no cell can be a formula."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HIT_COLUMNS)
        for hit in result.hits:
            writer.writerow(map(csv_cell, (hit.record_id, hit.reference, hit.category, "+".join(hit.rules),
                                           hit.strength.value, hit.followup_key.hex())))


def summary_line(result: MatchResult) -> str:
    if result.mode is Mode.CARDINALITY:
        return (f"compared {result.records} records ({result.keys} keys): "
                f"{result.hit_records} records are on the partner's list")
    weak = sum(1 for hit in result.hits if hit.strength is Strength.WEAK)
    return (f"compared {result.records} records ({result.keys} keys): {result.hit_records} records hit "
            f"({len(result.hits)} hit rows, {weak} by weak rules only: for a person to confirm)")


def cmd_match(args: argparse.Namespace) -> int:
    audit = None
    profile: Profile | None
    partner = args.partner
    if args.config:
        config = load_config(args.config)
        tls, profile = ClientTls(config.tls.ca, config.tls.cert, config.tls.key), config.profile
        if partner is None:  # the one other agency this node has an agreement with, if there is just one
            others = sorted(set(config.agreements) - {config.node_id})
            if len(others) != 1:
                raise PsiError("name the partner this match is for with --partner NAME (its certificate's name)")
            partner = others[0]
        audit = open_audit_log(config)
    elif args.ca and args.cert and args.key:
        tls, profile = ClientTls(args.ca, args.cert, args.key), PROFILES[args.profile] if args.profile else None
        if not (args.audit_log and args.signing_key):  # a query under an agency's certificate is always logged
            raise PsiError("a match runs under this agency's certificate and must be logged: give --config NODE.toml, "
                           "or --audit-log FILE with --signing-key PEM")
        audit = AuditLog(args.audit_log, tls.identity(), load_or_create_signing_key(args.signing_key))
    else:
        raise PsiError("give --config NODE.toml, or all of --ca, --cert and --key")
    records = read_records(args.input, args.format)
    mode = Mode(args.mode)
    cache = config.data_dir / "partner-tags" if args.config else None  # repeated queries fetch only changes
    with MatchClient(args.server, tls, server_name=args.server_name, partner=partner, cache_dir=cache) as client, \
            progress_bar(not args.quiet) as update:
        try:
            result = client.match(records, purpose=args.purpose, case_reference=args.case,
                                  operator=args.operator, mode=mode, profile=profile,
                                  list_id=args.list, progress=update, audit=audit)
        finally:
            if audit:
                audit.close()
    if mode is Mode.INTERSECTION:
        write_hits(args.out, result)
    print(summary_line(result))
    if args.config:  # the partner cosigns this node's audit log (docs/audit.md); the match itself is done
        try:
            console.print(witness_checkpoint(config, args.server, tls, args.server_name), highlight=False)
        except PsiError as exc:
            console.print(f"[yellow]warning:[/yellow] the partner did not cosign this node's audit log: {exc}",
                          highlight=False)
    return 0


def _bounded_text(text: str) -> str:
    if len(text) > _MAX_JUSTIFICATION:
        raise argparse.ArgumentTypeError(f"at most {_MAX_JUSTIFICATION} characters")
    return text


def _justification(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--justification", default="", type=_bounded_text, help=help_text)


def _add_watchlist_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wl = sub.add_parser("watchlist", help="the node's list").add_subparsers(dest="watchlist", required=True)
    imp = wl.add_parser("import", help="add or update records from CSV or JSON Lines")
    imp.add_argument("file", type=Path, help="CSV (with a header) or JSON Lines, UTF-8")
    imp.add_argument("--allow-empty", action="store_true", help="accept a file with no records")
    imp.add_argument("--config", type=Path, required=True)
    imp.add_argument("--format", choices=("csv", "jsonl"))
    imp.add_argument("--operator", default=getpass.getuser(), help="who imports (for the audit log)")
    _justification(imp, "why the list changes (for the audit log)")
    imp.add_argument("--quiet", action="store_true")
    imp.set_defaults(func=cmd_watchlist_import)
    erase = wl.add_parser("erase", help="remove records by id")
    erase.add_argument("ids", nargs="+")
    erase.add_argument("--config", type=Path, required=True)
    erase.add_argument("--operator", default=getpass.getuser(), help="who erases (for the audit log)")
    _justification(erase, "why these records go (for the audit log)")
    erase.set_defaults(func=cmd_watchlist_erase)


def _add_keys_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="the node's OPRF key").add_subparsers(dest="keys", required=True)
    init_keys = keys.add_parser("init", help="create the node's OPRF key (a new node does so on its first start)")
    init_keys.add_argument("--config", type=Path, required=True, help="this node's config file")
    init_keys.add_argument("--operator", default=getpass.getuser(), help="who creates it (for the audit log)")
    init_keys.set_defaults(func=cmd_keys_init)
    rotate = keys.add_parser("rotate", help="start a new key epoch (recomputes the tags)")
    rotate.add_argument("--config", type=Path, required=True)
    rotate.add_argument("--operator", default=getpass.getuser(), help="who rotates (for the audit log)")
    rotate.add_argument("--quiet", action="store_true")
    rotate.set_defaults(func=cmd_keys_rotate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psi", description="Private matching of wanted-person lists.")
    sub = parser.add_subparsers(dest="command", required=True)

    pki = sub.add_parser("pki", help="development certificates").add_subparsers(dest="pki", required=True)
    init = pki.add_parser("init", help="create a development CA and node certificates")
    init.add_argument("nodes", nargs="+", help="node ids, e.g. agency-a agency-b")
    init.add_argument("--out", type=Path, default=Path("pki"))
    init.set_defaults(func=cmd_pki_init)

    serve = sub.add_parser("serve", help="run a node")
    serve.add_argument("--config", type=Path, required=True)
    serve.add_argument("--quiet", action="store_true", help="no progress bar")
    serve.add_argument("--operator", default=getpass.getuser(),
                       help="who starts the node (logged with a change of agreements)")
    _justification(serve, "why the agreements changed, when they did")
    serve.set_defaults(func=cmd_serve)

    _add_watchlist_commands(sub)
    _add_keys_commands(sub)

    match = sub.add_parser("match", help="privately match a file against a partner node")
    match.add_argument("--server", required=True, help="HOST:PORT of the partner node")
    match.add_argument("--input", type=Path, required=True)
    match.add_argument("--out", type=Path, default=Path("hits.csv"))
    match.add_argument("--purpose", required=True, help="legal basis of the request")
    match.add_argument("--case", required=True, help="case reference")
    match.add_argument("--operator", default=getpass.getuser(), help="the officer starting the request")
    match.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.INTERSECTION.value)
    match.add_argument("--config", type=Path, help="this node's config (TLS files and profile)")
    match.add_argument("--ca", type=Path)
    match.add_argument("--cert", type=Path)
    match.add_argument("--key", type=Path)
    match.add_argument("--profile", choices=sorted(PROFILES),
                       help="match profile when no --config is given (default: the partner's)")
    match.add_argument("--partner", help="the partner agency meant: its certificate's common name must be this "
                                         "(default with --config: the one other agency of its agreements)")
    match.add_argument("--audit-log", type=Path, help="without --config: the audit log this query is written to")
    match.add_argument("--signing-key", type=Path,
                       help="without --config: the Ed25519 key (PEM, 0600) that signs --audit-log")
    match.add_argument("--server-name", help="host name expected in the partner's certificate")
    match.add_argument("--list", default="", help="the partner's list id (default: its default list)")
    match.add_argument("--format", choices=("csv", "jsonl"))
    match.add_argument("--quiet", action="store_true")
    match.set_defaults(func=cmd_match)

    add_audit_commands(sub)
    add_followup_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PsiError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
