"""`psi followup ...`: ask about a hit (requesting agency) and decide (answering agency's officer)."""

from __future__ import annotations

import argparse
import csv
import getpass
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.table import Table

from agency.audit.log import utc_now
from agency.config import NodeConfig, load_config, open_audit_log
from cli.display import csv_cell, make_console, plain
from client.api import ClientTls, MatchClient
from psi.client_query import Hit
from psi.errors import InputError
from psi.messages import FollowUpStatus
from psi.profiles import Strength
from server.followups import FIELDS, FollowUp, FollowUpDesk
from server.store import Store

console = make_console()
_CONFIG_HELP = "this node's config file"
_SERVER_HELP = "HOST:PORT of the partner node"
_ID_HELP = "the follow-up id"
_DECIDER_HELP = "the officer deciding (for the audit log)"


def hit_from_file(path: Path, reference: str) -> Hit:
    """The hit with `reference` from a `psi match` output file (it carries the follow-up key)."""
    cell = csv_cell(reference)  # as `psi match` wrote it
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("partner_reference") == cell:
                    return Hit(row["local_id"], reference, row["category"], tuple(row["matched_rules"].split("+")),
                               Strength(row["strength"]), bytes.fromhex(row["followup_key"]))
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read hits from {path}: {exc}") from None
    raise InputError(f"{path} has no hit with partner reference '{reference}'")


def print_status(status: FollowUpStatus) -> None:
    """The partner's answer: every piece of it is partner text, shown through `plain`."""
    state = plain(status.status.upper()) + (" (OVERDUE)" if status.overdue else "")
    console.print(f"follow-up {plain(status.followup_id)} for {plain(status.reference)}: {state}; "
                  f"reply due {plain(status.deadline)}", highlight=False)
    if status.reason:
        console.print(f"reason: {plain(status.reason)}", highlight=False)
    if status.fields:
        table = Table(title=f"released by {plain(status.decided_by)}")
        table.add_column("field")
        table.add_column("value")
        for name, value in status.fields:
            table.add_row(plain(name), plain(value))
        console.print(table)


def _client(config: NodeConfig, server: str) -> MatchClient:
    return MatchClient(server, ClientTls(config.tls.ca, config.tls.cert, config.tls.key))


def cmd_request(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    hit = hit_from_file(args.hits, args.reference)
    audit = open_audit_log(config)
    try:
        with _client(config, args.server) as client:
            status = client.request_followup(hit, purpose=args.purpose, case_reference=args.case,
                                             officer=args.officer, message=args.message, audit=audit)
    finally:
        audit.close()
    print_status(status)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    audit = open_audit_log(config)
    deadline = time.monotonic() + args.wait
    try:
        with _client(config, args.server) as client:
            status = client.followup_status(args.id, audit)
            while status.status == "pending" and time.monotonic() < deadline:
                time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
                status = client.followup_status(args.id, audit)
    finally:
        audit.close()
    print_status(status)
    return 0


@contextmanager
def _desk(config: NodeConfig) -> Iterator[FollowUpDesk]:
    """The node's follow-up desk; its audit log is signed and closed afterwards."""
    store, audit = Store(config.store_path), open_audit_log(config)
    try:
        yield FollowUpDesk(store, audit, config.data_dir)
    finally:
        audit.close()
        store.close()


def _show(items: list[FollowUp]) -> None:
    now = utc_now()
    table = Table(title="follow-up requests")
    for column in ("id", "from", "reference", "record", "purpose", "case", "officer", "due", "status"):
        table.add_column(column)
    for item in items:
        state = item.status + (" OVERDUE" if item.overdue(now) else "")
        cells = (item.followup_id, item.partner, item.reference, item.record_id, item.purpose,
                 item.case_reference, item.officer, item.deadline, state)
        table.add_row(*map(plain, cells))  # the partner wrote most of them
    console.print(table)


def cmd_list(args: argparse.Namespace) -> int:
    with _desk(load_config(args.config)) as desk:
        _show([i for i in desk.all() if args.all or i.status == "pending"])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _desk(load_config(args.config)) as desk:
        item = desk.get(args.id)
    _show([item])
    console.print(f"message: {plain(item.message) or '-'}", highlight=False)
    if item.fields:
        console.print(f"released fields: {plain(', '.join(sorted(item.fields)))}", highlight=False)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    with _desk(load_config(args.config)) as desk:
        if args.decision == "approve":
            fields = [f.strip() for f in args.fields.split(",") if f.strip()]
            item = desk.decide(args.id, args.officer, approve_fields=fields)
            print(f"approved {', '.join(sorted(item.fields))} of follow-up {item.followup_id} for {item.partner}")
        else:
            item = desk.decide(args.id, args.officer, reason=args.reason)
            print(f"denied follow-up {item.followup_id} for {item.partner}: {item.reason}")
    return 0


def add_followup_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fu = sub.add_parser("followup", help="after a hit: request, decide and receive personal data")
    cmds = fu.add_subparsers(dest="followup", required=True)

    request = cmds.add_parser("request", help="ask the partner about one hit (requesting agency)")
    request.add_argument("--server", required=True, help=_SERVER_HELP)
    request.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    request.add_argument("--hits", type=Path, required=True, help="the hits file of `psi match`")
    request.add_argument("--reference", required=True, help="the hit's partner reference")
    request.add_argument("--purpose", required=True, help="legal basis of the request")
    request.add_argument("--case", required=True, help="case reference")
    request.add_argument("--officer", default=getpass.getuser(), help="who asks (for both audit logs)")
    request.add_argument("--message", default="", help="a note for the partner's officer")
    request.set_defaults(func=cmd_request)

    status = cmds.add_parser("status", help="the state of one of our requests; the data once approved")
    status.add_argument("id", help=_ID_HELP)
    status.add_argument("--server", required=True, help=_SERVER_HELP)
    status.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    status.add_argument("--wait", type=float, default=0.0, help="poll up to this many seconds while pending")
    status.set_defaults(func=cmd_status)

    listing = cmds.add_parser("list", help="requests received by this node (pending; --all for every one)")
    listing.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    listing.add_argument("--all", action="store_true", help="decided requests too")
    listing.set_defaults(func=cmd_list)

    show = cmds.add_parser("show", help="one received request")
    show.add_argument("id", help=_ID_HELP)
    show.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    show.set_defaults(func=cmd_show)

    approve = cmds.add_parser("approve", help="release some fields of the record to the requester")
    approve.add_argument("id", help=_ID_HELP)
    approve.add_argument("--fields", required=True, help=f"comma-separated, from: {', '.join(FIELDS)}")
    approve.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    approve.add_argument("--officer", default=getpass.getuser(), help=_DECIDER_HELP)
    approve.set_defaults(func=cmd_decide, decision="approve")

    deny = cmds.add_parser("deny", help="refuse the request; nothing is released")
    deny.add_argument("id", help=_ID_HELP)
    deny.add_argument("--reason", required=True, help="why, for the requester (its length is audited)")
    deny.add_argument("--config", type=Path, required=True, help=_CONFIG_HELP)
    deny.add_argument("--officer", default=getpass.getuser(), help=_DECIDER_HELP)
    deny.set_defaults(func=cmd_decide, decision="deny")
