"""Build and run the gRPC server: matching, health and reflection over mutual TLS."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from agency.config import NodeConfig, TlsConfig, open_audit_log
from psi.errors import ConfigurationError
from psi.executor import INLINE, Executor
from psi.workers import WorkerPool
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from psiwire import witness_pb2, witness_pb2_grpc
from server import reflection  # v1 and v1alpha
from server.metrics import Metrics, MetricsEndpoint
from server.node import Node
from server.recovery import reconcile
from server.service import MatchingService
from server.store import Progress, Store
from server.witness import WitnessService

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Matching"].full_name


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} {path}: {exc.strerror}") from None


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """TLS that requires a client certificate signed by the configured CA."""
    return grpc.ssl_server_credentials(
        [(_read(tls.key, "TLS key"), _read(tls.cert, "TLS certificate"))],
        root_certificates=_read(tls.ca, "CA certificate"),
        require_client_auth=True,
    )


def create_server(node: Node, address: str | None = None, max_workers: int = 32,
                  executor: Executor = INLINE, metrics: Metrics | None = None) -> tuple[grpc.Server, int]:
    """A started-ready server bound to `address` (default: the config's); returns (server, port).

    `executor` runs the evaluations (the process pool of `serve`; inline in small tests);
    `metrics` collects what the node's metrics endpoint exposes (none: collected, not exposed).
    """
    limits = node.config.limits
    metrics = metrics or Metrics(node)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[metrics.interceptor(SERVICE_NAME)],
        options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes),
        ],
    )
    pb_grpc.add_MatchingServicer_to_server(MatchingService(node, executor, metrics), server)
    witness_pb2_grpc.add_WitnessServicer_to_server(WitnessService(node), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    def report(serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, status)

    node.on_serving = report
    report(node.serving)
    node.watch_health(report)  # also NOT_SERVING while a rotation runs or the audit log refuses entries
    reflection.enable_server_reflection(
        (SERVICE_NAME, witness_pb2.DESCRIPTOR.services_by_name["Witness"].full_name,
         health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    bind = address or node.config.listen
    if node.config.plaintext:  # load_config allows it on loopback addresses only
        log.warning("serving WITHOUT TLS on %s (plaintext = true): for local experiments only", bind)
        port = server.add_insecure_port(bind)
    else:
        port = server.add_secure_port(bind, server_credentials(node.config.tls))
    if port == 0:
        raise ConfigurationError(f"cannot listen on {bind}")
    return server, port


def open_node(config: NodeConfig, progress: Progress | None = None, operator: str = "node",
              executor: Executor = INLINE, justification: str = "") -> Node:
    """Open the store and key, settle what a crash left open, and bring the tags to the current epoch."""
    store, audit = Store(config.store_path, executor), open_audit_log(config)
    for note in reconcile(config, store, audit):
        log.warning("%s", note)
    node = Node(config, store, audit)
    node.prepare(operator, progress, justification)
    return node


def serve(config: NodeConfig, progress: Progress | None = None, operator: str = "node",
          justification: str = "") -> None:
    """Run until SIGINT or SIGTERM, then stop gracefully."""
    pool = WorkerPool()
    pool.start()  # before the store work, which uses it too, and before the first partner waits for it
    try:
        node = open_node(config, progress, operator, pool, justification)
    except BaseException:
        pool.close()
        raise
    try:  # a port already taken ends the start cleanly: the audit log signed, the workers gone
        metrics = Metrics(node)
        server, port = create_server(node, executor=pool, metrics=metrics)
        endpoint = MetricsEndpoint(metrics, config.metrics_listen) if config.metrics_listen else None
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        server.start()
        log.info("node %s serving list %s on port %d", config.node_id, config.list_id, port)
        print(f"node {config.node_id} listening on {config.listen} (port {port})", flush=True)
        if endpoint:
            log.info("metrics on http://%s/metrics (port %d)", config.metrics_listen, endpoint.port)
        stop.wait()
        if endpoint:
            endpoint.close()
        server.stop(grace=5).wait()
    finally:
        node.close()
        pool.close()
    print(f"node {config.node_id} stopped", flush=True)
