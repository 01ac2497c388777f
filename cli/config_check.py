"""`psi config check`: every check `load_config` makes, then what the node would serve, creating nothing."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from agency.config import NodeConfig, load_config, parse_listen
from cli.display import plain


def _port_note(listen: str) -> str:
    """Whether the address can be bound now; a running node holds it, so this is a note, not an error."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"cannot be bound now ({exc.strerror}; is the node already running?)"
    return "free"


def _where(path: Path) -> str:
    return f"{path} ({'exists' if path.exists() else 'created on first use'})"


def describe(config: NodeConfig) -> list[str]:
    """What the node would serve, one line each."""
    transport = "WITHOUT TLS (plaintext, loopback only)" if config.plaintext else "mutual TLS"
    lines = [
        f"node {config.node_id}: list '{config.list_id}', profile {config.profile.profile_id}",
        f"listen {config.listen} with {transport}: {_port_note(config.listen)}",
        f"certificate {config.tls.cert} (common name {config.node_id}, key {config.tls.key}), CA {config.tls.ca}",
        f"data dir {_where(config.data_dir)}",
        f"audit log {config.audit_log_path}, signing key {_where(config.signing_key_path)}, "
        f"a checkpoint every {config.checkpoint_every} entries",
        f"metrics {'http://' + config.metrics_listen + '/metrics' if config.metrics_listen else 'off'}",
        "limits " + ", ".join(f"{k}={v}" for k, v in vars(config.limits).items())
        + f", idle_seconds={config.idle_seconds}",
    ]
    for name, a in sorted(config.agreements.items()):
        lines.append(f"partner {name}: lists {', '.join(a.lists)}; modes {', '.join(m.value for m in a.modes)}; "
                     f"{a.max_query_size} per request, {a.budget_per_epoch} per key epoch, "
                     f"{a.rate_per_minute}/min, {a.max_sessions} sessions"
                     + (", certificate pinned" if a.certificate_sha256 else ""))
    if not config.agreements:
        lines.append("no partners: the node answers no one (add [partners.NAME] tables)")
    return lines


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{args.config}: OK")
    for line in describe(config):
        print(f"  {plain(line)}")
    return 0


def add_config_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="the node's config file").add_subparsers(dest="config_command",
                                                                                      required=True)
    check = config.add_parser("check", help="run every check of a config and print what the node would serve")
    check.add_argument("--config", type=Path, required=True, help="the config file to check")
    check.set_defaults(func=cmd_check)
