"""Shared fixtures: a development PKI and live nodes on 127.0.0.1 with mutual TLS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from agency.config import NodeConfig, load_config, render_config
from cli.pki import init_pki, issue_certificate
from client.api import ClientTls, MatchClient
from psi.records import Record
from server.app import create_server, open_node
from server.node import Node
from server.watchlist import import_records


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    init_pki(out, ["agency-a", "agency-b", "intruder", "card-only", "eager"])
    init_pki(out / "rogue", ["agency-a"])  # same names, another CA
    expired = out / "expired"
    expired.mkdir()
    for name in ("ca.pem", "ca.key"):
        (expired / name).write_bytes((out / name).read_bytes())
    issue_certificate(expired, "agency-a", start=dt.datetime.now(dt.UTC) - dt.timedelta(days=10),
                      validity=dt.timedelta(days=1))
    return out


def tls_for(pki: Path, node: str) -> ClientTls:
    return ClientTls(pki / "ca.pem", pki / f"{node}.pem", pki / f"{node}.key")


@dataclass
class LiveNode:
    config: NodeConfig
    node: Node
    server: grpc.Server
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def make_config(tmp: Path, pki: Path, node_id: str, listen: str = "127.0.0.1:50051", extra: str = "",
                partners: tuple[str, ...] = ("agency-a", "agency-b"), profile: str = "exact/1") -> NodeConfig:
    """A node config with default agreements for `partners`, plus any `extra` TOML."""
    path = tmp / f"{node_id}.toml"
    path.write_text(render_config(node_id, listen, str(tmp / f"data-{node_id}"), str(pki / "ca.pem"),
                                  str(pki / f"{node_id}.pem"), str(pki / f"{node_id}.key"),
                                  partners=partners, profile=profile) + extra)
    return load_config(path)


@pytest.fixture
def start_node(tmp_path: Path, pki_dir: Path) -> Iterator[Callable[[Sequence[Record]], LiveNode]]:
    started: list[LiveNode] = []

    def start(records: Sequence[Record], node_id: str = "agency-b", **config_args: object) -> LiveNode:
        config = make_config(tmp_path, pki_dir, node_id, **config_args)  # type: ignore[arg-type]
        if records:
            import_records(config, records, "test-operator")
        node = open_node(config)
        server, port = create_server(node, "127.0.0.1:0", max_workers=8)
        server.start()
        live = LiveNode(config, node, server, port)
        started.append(live)
        return live

    yield start
    for live in started:
        live.server.stop(grace=None).wait()
        live.node.close()


@pytest.fixture
def client_for(pki_dir: Path) -> Iterator[Callable[..., MatchClient]]:
    clients: list[MatchClient] = []

    def connect(live: LiveNode, node: str = "agency-a") -> MatchClient:
        client = MatchClient(live.target, tls_for(pki_dir, node), timeout=60)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
