"""The node's Prometheus metrics and their HTTP endpoint (`[metrics] listen`, off by default).

Counters and histograms are fed by the Matching servicer (queries, elements, tag bytes) and by
an interceptor around its calls (latency, refusals by status code), so the servicer stays a
list of protocol steps. Gauges (budget left, key epoch, checkpoint age, serving) are read from
the store and the audit log's files at scrape time: a scrape never changes anything. Each node
has a registry of its own, so several nodes can share a process (tests). docs/operations.md
lists the metrics and a scrape config.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agency.audit.verify import sidecar_path
from agency.config import parse_listen
from psi.errors import ConfigurationError
from psi.messages import Mode
from server.node import Node

# Seconds: a GetParameters answers in milliseconds, a 2^20-element session takes minutes.
_LATENCY_BUCKETS = (0.005, 0.02, 0.1, 0.5, 2.0, 10.0, 30.0, 120.0, 600.0)


class _NodeState(Collector):
    """Gauges read at scrape time from the node's store and audit files."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[GaugeMetricFamily]:
        node = self._node
        yield GaugeMetricFamily("psi_serving", "1 while the node can serve, 0 once it stopped (see its log)",
                                value=1 if node.serving else 0)
        current = node.store.current_key_epoch()
        if current is not None:
            epoch = current[0]
            yield GaugeMetricFamily("psi_key_epoch", "the OPRF key epoch in use", value=epoch)
            left = GaugeMetricFamily("psi_budget_left_elements",
                                     "blinded elements each partner may still have evaluated in this key epoch",
                                     labels=["partner"])
            for partner, agreement in sorted(node.policy.agreements.items()):
                used = node.store.budget_used(partner, epoch)
                left.add_metric([partner], max(0, agreement.budget_per_epoch - used))
            yield left
        checkpoint = sidecar_path(node.config.audit_log_path)
        if checkpoint.exists():  # rewritten at every signed checkpoint
            yield GaugeMetricFamily("psi_audit_checkpoint_age_seconds",
                                    "seconds since the audit log's latest signed checkpoint",
                                    value=max(0.0, time.time() - checkpoint.stat().st_mtime))


class Metrics:
    """One node's metrics; the servicer calls `query`, `evaluated` and `tag_bytes`."""

    def __init__(self, node: Node) -> None:
        self.registry = CollectorRegistry()
        self._queries = Counter("psi_queries", "evaluation sessions started, by partner and mode",
                                ["partner", "mode"], registry=self.registry)
        self._elements = Counter("psi_elements_evaluated", "blinded elements evaluated (and charged), by partner",
                                 ["partner"], registry=self.registry)
        self._tag_bytes = Counter("psi_tag_stream_bytes", "bytes of tag chunks sent, by partner", ["partner"],
                                  registry=self.registry)
        self.refusals = Counter("psi_refusals", "calls ended with an error status, by method and status code",
                                ["method", "code"], registry=self.registry)
        self.latency = Histogram("psi_call_seconds", "time from a call's start to its last message, by method",
                                 ["method"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_NodeState(node))

    def query(self, partner: str, mode: Mode) -> None:
        self._queries.labels(partner, mode.value).inc()

    def evaluated(self, partner: str, elements: int) -> None:
        self._elements.labels(partner).inc(elements)

    def tag_bytes(self, partner: str, size: int) -> None:
        self._tag_bytes.labels(partner).inc(size)

    def interceptor(self, service: str) -> grpc.ServerInterceptor:
        """Times each call of `service` and counts the ones that end with an error status."""
        return _Observer(self, f"/{service}/")


class _Observer(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no type hints
    def __init__(self, metrics: Metrics, prefix: str) -> None:
        self._metrics = metrics
        self._prefix = prefix

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not details.method.startswith(self._prefix):
            return handler
        method = details.method[len(self._prefix):]
        if handler.unary_unary:
            return handler._replace(unary_unary=self._unary(method, handler.unary_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=self._stream(method, handler.unary_stream))
        if handler.stream_stream:
            return handler._replace(stream_stream=self._stream(method, handler.stream_stream))
        return handler  # no client-streaming unary method in the Matching service

    def _done(self, method: str, started: float, context: grpc.ServicerContext) -> None:
        self._metrics.latency.labels(method).observe(time.perf_counter() - started)
        code = context.code()
        if code is not None and code is not grpc.StatusCode.OK:
            self._metrics.refusals.labels(method, code.name).inc()

    def _unary(self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Any]
               ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                return behavior(request, context)
            finally:
                self._done(method, started, context)
        return run

    def _stream(self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Iterable[Any]]
                ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            try:
                yield from behavior(request, context)
            finally:
                self._done(method, started, context)
        return run


class MetricsEndpoint:
    """`http://LISTEN/metrics` for Prometheus, on a thread of its own; `close` stops it."""

    def __init__(self, metrics: Metrics, listen: str) -> None:
        host, port = parse_listen(listen)
        try:
            self._server, self._thread = start_http_server(port, host, metrics.registry)
        except OSError as exc:
            raise ConfigurationError(f"[metrics] cannot listen on {listen}: {exc.strerror or exc}") from None
        self.port = int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
