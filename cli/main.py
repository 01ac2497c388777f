"""The `psi` command line: node administration and matching.

    psi pki init --out pki agency-a agency-b
    psi config check --config node.toml
    psi watchlist import FILE --config node.toml
    psi serve --config node.toml
    psi match --server HOST:PORT --input FILE --out hits.csv --config node.toml \\
              --purpose "..." --case REF

An expected failure prints one line `error: ...` and exits with its class's code
(`cli.exit_codes`); `--debug` adds the traceback. The README's command reference is
rendered from this parser (`python -m cli.reference --write README.md`).
"""

from __future__ import annotations

import argparse
import csv
import getpass
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from agency.audit.log import AuditLog
from agency.config import load_config, open_audit_log
from agency.keys import load_or_create_signing_key
from cli.audit import add_audit_commands, witness_checkpoint
from cli.config_check import add_config_commands
from cli.display import csv_cell, make_console, plain
from cli.exit_codes import ExitCode, exit_code
from cli.followup import add_followup_commands
from cli.logs import configure_logging
from cli.pki import init_pki
from cli.record_files import read_records
from client.api import ClientTls, MatchClient, ProgressCallback
from client.bulk import AUTO_MIN_CLIENT_RECORDS
from psi import backend
from psi.client_query import MatchResult
from psi.errors import InputError, PsiError
from psi.messages import Mode
from psi.profiles import PROFILES, Profile, Strength
from psi.record_parsing import ParseIssue
from psi.records import Record
from psi.workers import WorkerPool
from server.app import serve
from server.rotation import init_key, rotate_key
from server.watchlist import erase_records, import_records, keys_lost

console = make_console(stderr=True)

_MAX_JUSTIFICATION = 512  # characters: a reason, not a document
_CONFIG_HELP = "this node's config file (TOML; `psi config check` checks it)"
_QUIET_HELP = "no progress bar"
_FORMAT_HELP = "the file's format (default: from its extension, .csv or .jsonl)"
AUTO_MODE = "auto"
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
    issued = init_pki(args.out, args.nodes, force=args.force)
    for node_id, creds in issued.items():
        print(f"{node_id}: {creds.cert} {creds.key}")
    print(f"CA: {args.out / 'ca.pem'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    logging.getLogger().setLevel(logging.INFO)  # a node logs each session; other commands only warnings
    with progress_bar(not args.quiet) as update:
        serve(config, _store_progress("tags", update), args.operator, args.justification)
    return 0


def _write_rejects(path: Path, issues: Sequence[ParseIssue]) -> None:
    """The skipped rows: line, id, field, reason and the row as read (JSON), no cell a formula."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("line", "id", "field", "reason", "row"))
        for issue in issues:
            writer.writerow(map(csv_cell, ("" if issue.line is None else str(issue.line), issue.record_id,
                                           issue.field or "", issue.reason, issue.value)))


def cmd_watchlist_import(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    issues: list[ParseIssue] = []
    with WorkerPool() as pool, progress_bar(not args.quiet) as update:
        update("read", 0, 1)  # on screen at once, while a large file is parsed
        records = read_records(args.file, args.format, require_reference=True, strict=args.strict,
                               on_error=args.on_error, issues=issues)
        update("read", 1, 1)
        skipped = [i for i in issues if i.kind == "skipped"]
        if skipped:
            reject_file = args.reject_file or args.file.with_name(args.file.name + ".rejected.csv")
            _write_rejects(reject_file, skipped)
        if not records and not args.allow_empty:
            raise InputError(f"{args.file} holds no records; nothing was imported "
                             "(pass --allow-empty to record an empty import)")
        report = import_records(config, records, args.operator, _store_progress("import", update), pool,
                                args.justification)
    lost = keys_lost(config.profile, records, issues)
    for issue in issues:
        if issue.kind == "warning":
            console.print(f"[yellow]warning:[/yellow] {issue} (was '{issue.value}'; "
                          f"{lost.get(issue.record_id, 0)} match keys fewer)", highlight=False)
    print(f"read {report.records} records: {report.added} new, {report.updated} updated, "
          f"{report.unchanged} unchanged ({report.match_keys} match keys computed); "
          f"list '{config.list_id}' holds {report.list_size} records, version {report.list_version}")
    warned = sum(1 for i in issues if i.kind == "warning")
    if warned:
        print(f"{warned} records kept without their date of birth: {sum(lost.values())} match keys fewer in all")
    if skipped:
        print(f"{len(skipped)} rows skipped, listed with line numbers and reasons in {reject_file}")
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
    by = " in bulk mode" if result.mode is Mode.BULK else ""
    return (f"compared {result.records} records ({result.keys} keys){by}: {result.hit_records} records hit "
            f"({len(result.hits)} hit rows, {weak} by weak rules only: for a person to confirm)")


def _match_mode(client: MatchClient, args: argparse.Namespace, records: Sequence[Record]) -> Mode:
    """The mode asked for; for `auto`, the one `client.bulk.choose_mode` picks, said on stderr with why."""
    if args.mode != AUTO_MODE:
        return Mode(args.mode)
    mode, reason = client.choose_mode(records, args.list)
    console.print(f"mode auto: {mode.value} ({plain(reason)})", highlight=False)
    return mode


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
    cache = config.data_dir / "partner-tags" if args.config else None  # repeated queries fetch only changes
    with MatchClient(args.server, tls, server_name=args.server_name, partner=partner, cache_dir=cache) as client, \
            progress_bar(not args.quiet) as update:
        try:
            mode = _match_mode(client, args, records)
            result = client.match(records, purpose=args.purpose, case_reference=args.case,
                                  operator=args.operator, mode=mode, profile=profile,
                                  list_id=args.list, progress=update, audit=audit)
        finally:
            if audit:
                audit.close()
    if mode is not Mode.CARDINALITY:
        write_hits(args.out, result)
    print(summary_line(result))
    if args.config:  # the partner cosigns this node's audit log (docs/audit.md); the match itself is done
        try:
            console.print(witness_checkpoint(config, args.server, tls, args.server_name), highlight=False)
        except PsiError as exc:
            console.print(f"[yellow]warning:[/yellow] the partner did not cosign this node's audit log: "
                          f"{plain(str(exc))}", highlight=False)
    return 0


def _bounded_text(text: str) -> str:
    if len(text) > _MAX_JUSTIFICATION:
        raise argparse.ArgumentTypeError(f"at most {_MAX_JUSTIFICATION} characters")
    return text


def _justification(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--justification", default="", type=_bounded_text, help=help_text)


def _add_watchlist_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wl = sub.add_parser("watchlist", help="the node's list").add_subparsers(dest="watchlist", required=True)
    imp = wl.add_parser("import", help="add or update records from CSV or JSON Lines (records not in the file "
                                       "stay: remove them with `psi watchlist erase`)")
    imp.add_argument("file", type=Path, help="CSV (with a header) or JSON Lines, UTF-8")
    imp.add_argument("--allow-empty", action="store_true", help="accept a file with no records")
    imp.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    imp.add_argument("--format", choices=("csv", "jsonl"), help=_FORMAT_HELP)
    imp.add_argument("--operator", default=getpass.getuser(), help="who imports (for the audit log)")
    _justification(imp, "why the list changes (for the audit log)")
    imp.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    imp.add_argument("--on-error", choices=("reject", "skip"), default="reject",
                     help="a row that cannot be read: reject refuses the whole file (default), skip leaves the row "
                          "out and lists it in the reject file")
    imp.add_argument("--reject-file", type=Path,
                     help="where --on-error=skip lists the skipped rows (default: FILE.rejected.csv)")
    imp.add_argument("--strict", action="store_true",
                     help="refuse an impossible date of birth instead of keeping the record without it")
    imp.set_defaults(func=cmd_watchlist_import)
    erase = wl.add_parser("erase", help="remove records by id")
    erase.add_argument("ids", nargs="+", help="ids of the records to remove")
    erase.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    erase.add_argument("--operator", default=getpass.getuser(), help="who erases (for the audit log)")
    _justification(erase, "why these records go (for the audit log)")
    erase.set_defaults(func=cmd_watchlist_erase)


def _add_keys_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="the node's OPRF key").add_subparsers(dest="keys", required=True)
    init_keys = keys.add_parser("init", help="create the node's OPRF key (a new node does so on its first start)")
    init_keys.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    init_keys.add_argument("--operator", default=getpass.getuser(), help="who creates it (for the audit log)")
    init_keys.set_defaults(func=cmd_keys_init)
    rotate = keys.add_parser("rotate", help="start a new key epoch (recomputes the tags)")
    rotate.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    rotate.add_argument("--operator", default=getpass.getuser(), help="who rotates (for the audit log)")
    rotate.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    rotate.set_defaults(func=cmd_keys_rotate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psi", description="Private matching of wanted-person lists.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {metadata.version('psi-match')}, group backend: {backend.active().name}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pki = sub.add_parser("pki", help="development certificates").add_subparsers(dest="pki", required=True)
    init = pki.add_parser("init", help="create a development CA and node certificates")
    init.add_argument("nodes", nargs="+", help="node ids, e.g. agency-a agency-b")
    init.add_argument("--out", type=Path, default=Path("pki"), help="folder for the CA and the certificates")
    init.add_argument("--force", action="store_true",
                      help="replace an existing CA: every certificate it signed stops being trusted")
    init.set_defaults(func=cmd_pki_init)

    add_config_commands(sub)

    serve = sub.add_parser("serve", help="run a node")
    serve.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    serve.add_argument("--quiet", action="store_true", help="no progress bar")
    serve.add_argument("--operator", default=getpass.getuser(),
                       help="who starts the node (logged with a change of agreements)")
    _justification(serve, "why the agreements changed, when they did")
    serve.set_defaults(func=cmd_serve)

    _add_watchlist_commands(sub)
    _add_keys_commands(sub)
    _add_match_command(sub)
    add_audit_commands(sub)
    add_followup_commands(sub)
    for command in leaf_parsers(parser):  # before or after the command: `psi --debug serve`, `psi serve --debug`
        _add_global_options(command)
    _add_global_options(parser)
    return parser


def _add_match_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    match = sub.add_parser("match", help="privately match a file against a partner node")
    match.add_argument("--server", required=True, help="HOST:PORT of the partner node")
    match.add_argument("--input", type=Path, required=True, help="this agency's records (CSV or JSON Lines)")
    match.add_argument("--out", type=Path, default=Path("hits.csv"), help="where the hits are written (CSV)")
    match.add_argument("--purpose", required=True, help="legal basis of the request")
    match.add_argument("--case", required=True, help="case reference")
    match.add_argument("--operator", default=getpass.getuser(), help="the officer starting the request")
    match.add_argument("--mode", choices=[*(m.value for m in Mode), AUTO_MODE], default=Mode.INTERSECTION.value,
                       help="intersection: which records hit; cardinality: only how many; bulk: which records hit, "
                            "by an OT-extension PSI for two large lists; auto: bulk when both lists hold at least "
                            f"{AUTO_MIN_CLIENT_RECORDS:,} records and no tag cache of the partner's key epoch is "
                            "warm, else intersection (says which and why)")
    match.add_argument("--config", type=Path, help="this node's config (TLS files, profile and audit log)")
    match.add_argument("--ca", type=Path, help="without --config: the CA that signed the partner's certificate")
    match.add_argument("--cert", type=Path, help="without --config: this agency's certificate (PEM)")
    match.add_argument("--key", type=Path, help="without --config: that certificate's key (PEM)")
    match.add_argument("--profile", choices=sorted(PROFILES),
                       help="match profile when no --config is given (default: the partner's)")
    match.add_argument("--partner", help="the partner agency meant: its certificate's common name must be this "
                                         "(default with --config: the one other agency of its agreements)")
    match.add_argument("--audit-log", type=Path, help="without --config: the audit log this query is written to")
    match.add_argument("--signing-key", type=Path,
                       help="without --config: the Ed25519 key (PEM, 0600) that signs --audit-log")
    match.add_argument("--server-name", help="host name expected in the partner's certificate")
    match.add_argument("--list", default="", help="the partner's list id (default: its default list)")
    match.add_argument("--format", choices=("csv", "jsonl"), help=_FORMAT_HELP)
    match.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    match.set_defaults(func=cmd_match)


def leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Each command's own parser (`psi watchlist import`, ...), depth first, in the order they were added."""
    for action in parser._actions:  # argparse has no public walk of its subcommands
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if child._subparsers is None:
                    yield child
                else:
                    yield from leaf_parsers(child)


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's parser must not reset what was given before the command.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of a failure (for a bug report)")
    parser.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS,
                        help="log lines as text, or as one JSON object per line for a log collector")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; an expected failure is one line on stderr and its class's exit code."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    configure_logging(getattr(args, "log_format", "text"), logging.DEBUG if debug else logging.WARNING)
    try:
        return int(args.func(args))
    except (Exception, KeyboardInterrupt) as exc:
        code = exit_code(exc)
        if debug:
            traceback.print_exc()
        if code is ExitCode.INTERNAL:
            message = f"internal error ({type(exc).__name__}: {exc}); run again with --debug and report the traceback"
        elif isinstance(exc, OSError):
            message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        else:
            message = str(exc) or type(exc).__name__
        if code is not ExitCode.INTERRUPTED:
            console.print(f"[red]error:[/red] {plain(message)}", highlight=False)
        return int(code)


if __name__ == "__main__":
    sys.exit(main())
