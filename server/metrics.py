"""Prometheus metrics of the gRPC service, served on a port of their own at /metrics."""

from __future__ import annotations

import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from core.networks import AllowedNetworks

# From well under the latency targets (3 ms, 5 ms) up to the default deadline.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The service's metrics in a registry of their own (several servers can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("grpc_service", "grpc_method")
        self.requests = Counter("analytics_grpc_requests", "gRPC calls received.", labels, registry=self.registry)
        self.responses = Counter(
            "analytics_grpc_responses",
            "gRPC calls finished, by status code (OK or the error).",
            (*labels, "grpc_code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "analytics_grpc_request_seconds",
            "Time from a call's arrival to its answer, in seconds.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.query_seconds = Histogram(
            "analytics_clickhouse_query_seconds",
            "Time of each ClickHouse query of the service, in seconds, by query and outcome (ok, timeout, error).",
            ("query", "outcome"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.log_tails = Gauge("analytics_grpc_log_tails", "StreamJobLogs calls being served.", registry=self.registry)
        self.log_tail_polls = Counter(
            "analytics_grpc_log_tail_polls",
            "Polls of ClickHouse for the lines of every tailed job (one a tick, whatever the number of tails).",
            registry=self.registry,
        )
        self.log_tail_polled_jobs = Counter(
            "analytics_grpc_log_tail_polled_jobs", "Jobs covered by those polls, summed.", registry=self.registry
        )
        self.lookup_batch_keys = Histogram(
            "analytics_grpc_lookup_batch_keys",
            "Keys per ClickHouse query of the coalesced GetUserAnalytics and GetWorkflowAnalytics lookups.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.lookups_pending = Gauge(
            "analytics_grpc_lookups_pending",
            "GetUserAnalytics and GetWorkflowAnalytics lookups gone to ClickHouse without an answer yet"
            " (queued for a coalesced query or in one).",
            registry=self.registry,
        )
        self.serving_staleness = Gauge(
            "analytics_grpc_serving_model_staleness_seconds",
            "Age of the serving model's newest read of ClickHouse (answers older than the bound go to ClickHouse).",
            registry=self.registry,
        )
        self.serving_workflows = Gauge(
            "analytics_grpc_serving_model_workflows", "Workflows the serving model holds.", registry=self.registry
        )
        self.serving_series_buckets = Gauge(
            "analytics_grpc_serving_model_series_buckets",
            "Time-series buckets the serving model holds, of every user and granularity.",
            registry=self.registry,
        )
        self._http = None

    def observe_batch(self, keys: int) -> None:
        self.lookup_batch_keys.observe(keys)

    def watch_serving_model(self, model) -> None:
        self.serving_staleness.set_function(lambda: model.staleness() if model.staleness() is not None else -1)
        self.serving_workflows.set_function(lambda: model.workflows)
        self.serving_series_buckets.set_function(lambda: model.series.points)

    def observe_tail_poll(self, jobs: int) -> None:
        self.log_tail_polls.inc()
        self.log_tail_polled_jobs.inc(jobs)

    def observe_query(self, name: str, seconds: float, outcome: str) -> None:
        self.query_seconds.labels(name, outcome).observe(seconds)

    def serve(self, host: str, port: int, allowed: AllowedNetworks | None = None) -> None:
        """Answer GET /metrics on host:port in a thread of its own, to the clients ``allowed``
        (ANALYTICS_GRPC_ALLOWED_NETWORKS) lets call the service; others get 403 naming their address."""
        app = make_wsgi_app(self.registry)
        if allowed is not None:
            app = _gated(app, allowed)
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # "[::]", as gRPC writes it
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        server_class = type("MetricsServer", (_ThreadingWSGIServer,), {"address_family": family})
        self._http = make_server(host, port, app, server_class, handler_class=_QuietHandler)
        threading.Thread(target=self._http.serve_forever, name="grpc-metrics", daemon=True).start()

    @property
    def port(self) -> int | None:
        return self._http.server_address[1] if self._http is not None else None

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the name BaseHTTPRequestHandler gives it
        """Scrapes are not logged, as prometheus-client's own server does not log them."""


def _gated(app, allowed: AllowedNetworks):
    """The metrics app behind the service's allow-list: a scrape from elsewhere is 403, naming its address."""

    def gated(environ, start_response):
        host = environ.get("REMOTE_ADDR")
        if allowed.allows(host):
            return app(environ, start_response)
        body = f"{allowed.refusal(host)}\n".encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        start_response("403 Forbidden", headers)
        return [body]

    return gated
