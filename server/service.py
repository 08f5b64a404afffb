"""The gRPC server: AnalyticsService, health and reflection behind the interceptors.

It is given its settings slice and a query backend (core.backend.QueryBackend) and knows nothing
of where the queries run: `analytics grpc` hands it ClickHouse over HTTP, `analytics up` the
in-process chDB. Stopping sets every health status to NOT_SERVING, lets calls in flight finish
(up to GRPC_DRAIN_SECONDS), then closes the ClickHouse connections.
"""

from __future__ import annotations

import logging
import signal
import ssl
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from analytics_proto import analytics_pb2 as pb
from analytics_proto import analytics_pb2_grpc as pb_grpc
from core.backend import QueryBackend
from core.networks import AllowedNetworks
from core.ports import CannotListen, check_free, url_host
from core.settings.grpc import GrpcSettings
from server.auth import TokenError, load_tokens
from server.extended import ExtendedQueries
from server.health import HealthService, StoreWatch
from server.interceptors import (
    MetricsInterceptor,
    NetworkInterceptor,
    RequestInterceptor,
    ThreadsOfTheirOwn,
    TokenInterceptor,
    WorkerLimit,
)
from server.log_service import JobLogService
from server.logs import LogQueries
from server.lookups import TotalsLookups
from server.metrics import Metrics
from server.queries import Queries
from server.reflection import enable_reflection
from server.servicer import AnalyticsServicer
from server.serving import ServingModel
from server.storage import StorageService
from server.tail import TailHub
from server.validation import IdFormat

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AnalyticsService"].full_name


class GrpcStartError(Exception):
    """The service cannot start as configured; the message says why."""


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise GrpcStartError(f"cannot read the {what} {path}: {error.strerror or error}") from None


def _check_pair(cert: Path, key: Path) -> None:
    """Refuse a certificate or key that is not PEM, or a key that is not the certificate's: gRPC's
    core only logs that, and the start then failed as if the port were taken."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError as error:
        raise GrpcStartError(
            f"the TLS certificate (ANALYTICS_GRPC_TLS_CERT) {cert} and key (ANALYTICS_GRPC_TLS_KEY) {key} are not a "
            f"PEM certificate chain and its private key: {error.reason or error}"
        ) from None


def server_credentials(settings: GrpcSettings) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured; mutual TLS with a client CA."""
    if settings.grpc_tls_cert is None or settings.grpc_tls_key is None:
        return None
    chain = _read_pem(settings.grpc_tls_cert, "TLS certificate (ANALYTICS_GRPC_TLS_CERT)")
    key = _read_pem(settings.grpc_tls_key, "TLS key (ANALYTICS_GRPC_TLS_KEY)")
    _check_pair(settings.grpc_tls_cert, settings.grpc_tls_key)
    client_ca = None
    if settings.grpc_tls_client_ca is not None:
        client_ca = _read_pem(settings.grpc_tls_client_ca, "client CA (ANALYTICS_GRPC_TLS_CLIENT_CA)")
        try:
            ssl.create_default_context(cadata=client_ca.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as error:
            raise GrpcStartError(
                f"the client CA (ANALYTICS_GRPC_TLS_CLIENT_CA) {settings.grpc_tls_client_ca} holds no PEM "
                f"certificate: {error}"
            ) from None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca, require_client_auth=bool(client_ca))


# The serving model's bound when ANALYTICS_GRPC_SERVING_MAX_STALENESS is unset and it sees every write.
DEFAULT_SERVING_BOUND = 1.0

# Threads of the log tails beyond ANALYTICS_GRPC_MAX_LOG_TAILS: a tail asked for beyond the limit
# gets one to be refused (RESOURCE_EXHAUSTED) at once rather than queue for a tail's end.
SPARE_TAIL_THREADS = 4

# Threads of their own for health checks (Kubernetes' probes, load balancers): a Check never waits
# behind the calls queued for a worker, which with a burst of a thousand took seconds, past a
# probe's timeout (1 s in Kubernetes), and the probe called a busy server dead.
HEALTH_CHECK = f"/{health_pb2.DESCRIPTOR.services_by_name['Health'].full_name}/Check"
HEALTH_THREADS = 4

# Clients that keep their connections alive with pings (grpc-go's keepalive.ClientParameters, at
# least 10 s apart there, often with PermitWithoutStream) are answered, not sent away: by default
# the server takes a ping at most every 5 minutes without calls and, at the third sooner one,
# closes the connection with GOAWAY "too_many_pings", which clients log as an error and answer by
# reconnecting and doubling their interval.
KEEPALIVE_PINGS_ACCEPTED = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
]


# Calls gRPC's core lets wait until the service takes them up. By default it cancels those beyond
# 1,000 (some at random up to 3,000, all beyond): a burst of calls came back CANCELLED, which a
# client reads as its own cancel, before the service's admission control (maximum_concurrent_rpcs)
# could answer them or refuse them with RESOURCE_EXHAUSTED. A waiting call holds a few kB.
PENDING_CALLS = 20_000
PENDING_CALLS_ALLOWED = [
    ("grpc.server.max_pending_requests", PENDING_CALLS),
    ("grpc.server.max_pending_requests_hard_limit", PENDING_CALLS),
]


# The metadata (headers) a call may carry. gRPC's core refused metadata past 8 KiB at random, more
# often the larger, up to 16 KiB (RESOURCE_EXHAUSTED "received metadata size exceeds soft limit"):
# a client with a large token or tracing headers failed now and then. One limit, no chance in it;
# a client is told it (HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE) and refuses to send more itself.
METADATA_LIMIT = 64 * 1024
METADATA_ALLOWED = [
    ("grpc.max_metadata_size", METADATA_LIMIT),
    ("grpc.absolute_max_metadata_size", METADATA_LIMIT),
]


def serving_bound(settings: GrpcSettings, backend: QueryBackend) -> float | None:
    """The serving model's staleness bound, or None to run without it.

    Set: 0 is off, anything else on with that bound. Unset: on where the backend counts every
    write (read-your-writes), off over HTTP, where others write unseen. Never on a cluster.
    """
    if settings.cluster:
        return None
    chosen = settings.grpc_serving_max_staleness
    if chosen is None:
        return DEFAULT_SERVING_BOUND if backend.writes is not None else None
    return chosen or None


class AnalyticsServer:
    """The service on one backend; a component of `analytics up` (name, start, stop)."""

    name = "gRPC AnalyticsService"

    def __init__(self, settings: GrpcSettings, backend: QueryBackend):
        self.settings = settings
        self.backend = backend
        self.metrics = Metrics()
        self.health = HealthService()
        self.store_watch: StoreWatch | None = None
        self.port: int | None = None
        self.tail_hub: TailHub | None = None
        self.log_service: JobLogService | None = None
        self.serving_model: ServingModel | None = None
        self._server: grpc.Server | None = None
        self._tail_threads: futures.ThreadPoolExecutor | None = None
        self._health_threads: futures.ThreadPoolExecutor | None = None
        self._stopped = threading.Event()
        try:
            self.tokens = load_tokens(
                settings.grpc_tokens.get_secret_value() if settings.grpc_tokens is not None else None,
                settings.grpc_tokens_file,
            )
        except TokenError as error:
            raise GrpcStartError(str(error)) from None
        self.credentials = server_credentials(settings)
        self.allowed_networks = AllowedNetworks.from_setting(
            settings.grpc_allowed_networks, "ANALYTICS_GRPC_ALLOWED_NETWORKS"
        )

    def _build(self) -> grpc.Server:
        settings = self.settings
        ids = IdFormat(settings.grpc_id_format)
        interceptors: list[grpc.ServerInterceptor] = [MetricsInterceptor(self.metrics)]
        if self.allowed_networks is not None:
            interceptors.append(NetworkInterceptor(self.allowed_networks))
        interceptors.append(RequestInterceptor())
        if self.tokens is not None:
            interceptors.append(TokenInterceptor(self.tokens, ids))
        worker_limit = WorkerLimit(settings.grpc_workers)
        interceptors.append(worker_limit)  # after the checks above
        # A log tail holds its thread for as long as it runs: the tails run on threads of their own
        # (a few more than their limit, so a call beyond it is refused at once), and neither kind
        # of call can take the threads the other needs.
        self._tail_threads = futures.ThreadPoolExecutor(
            max_workers=settings.grpc_max_log_tails + SPARE_TAIL_THREADS, thread_name_prefix="grpc-tail"
        )
        interceptors.append(ThreadsOfTheirOwn({f"/{SERVICE_NAME}/StreamJobLogs"}, self._tail_threads))
        self._health_threads = futures.ThreadPoolExecutor(max_workers=HEALTH_THREADS, thread_name_prefix="grpc-health")
        interceptors.append(ThreadsOfTheirOwn({HEALTH_CHECK}, self._health_threads))
        # Calls beyond the workers wait for one here (within their deadline), as do reflection calls.
        threads = settings.grpc_workers + settings.grpc_max_log_tails
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc-worker"),
            interceptors=interceptors,
            options=[
                # Without this a second server could bind the same port and share its calls.
                ("grpc.so_reuseport", 0),
                *KEEPALIVE_PINGS_ACCEPTED,
                *PENDING_CALLS_ALLOWED,
                *METADATA_ALLOWED,
            ],
            # Admission control: beyond the calls the threads run and a bounded queue, a call is
            # refused at once with RESOURCE_EXHAUSTED instead of waiting behind an unbounded queue.
            maximum_concurrent_rpcs=threads + settings.grpc_max_queued_calls,
        )
        queries = Queries(self.backend, observe=self.metrics.observe_query, cluster=bool(settings.cluster))
        bound = serving_bound(settings, self.backend)
        if bound is not None:
            self.serving_model = ServingModel(
                self.backend,
                max_staleness=bound,
                interval=settings.grpc_serving_poll_interval,
                query_timeout=settings.grpc_default_deadline,
                max_workflows=settings.grpc_serving_max_workflows,
                max_series_points=settings.grpc_serving_max_series_points,
            )
            self.metrics.watch_serving_model(self.serving_model)
        totals = TotalsLookups(
            queries, self.serving_model, max_batch=settings.grpc_lookup_batch, on_batch=self.metrics.observe_batch
        )
        self.metrics.lookups_pending.set_function(lambda: totals.pending)
        logs = LogQueries(queries)
        self.tail_hub = TailHub(
            logs,
            interval=settings.grpc_log_tail_interval,
            linger=settings.grpc_log_tail_linger,
            poll_timeout=settings.grpc_default_deadline,
            on_poll=self.metrics.observe_tail_poll,
        )
        self.metrics.log_tails.set_function(lambda: self.tail_hub.tails if self.tail_hub else 0)
        self.log_service = JobLogService(
            logs,
            self.tail_hub,
            ids,
            settings.grpc_default_deadline,
            settings.grpc_max_log_tails,
            workers=settings.grpc_workers,
            free_workers=worker_limit.free,  # a tail's first queries wait for a worker too
        )
        servicer = AnalyticsServicer(
            queries,
            ids,
            settings.grpc_default_deadline,
            self.log_service,
            StorageService(queries, settings.grpc_default_deadline),
            totals,
            ExtendedQueries(queries, self.serving_model),
        )
        pb_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if settings.grpc_reflection:
            enable_reflection((SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
        return server

    def start(self) -> None:
        settings = self.settings
        try:
            # Checked here, as grpc's own refusal comes with a line of its C core's log before it.
            check_free(
                settings.grpc_host, settings.grpc_port, "ANALYTICS_GRPC_PORT", host_variable="ANALYTICS_GRPC_HOST"
            )
        except CannotListen as error:
            raise GrpcStartError(str(error)) from None
        server = self._build()
        address = f"{url_host(settings.grpc_host)}:{settings.grpc_port}"  # gRPC takes an IPv6 address in brackets
        try:
            if self.credentials is not None:
                self.port = server.add_secure_port(address, self.credentials)
            else:
                self.port = server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise GrpcStartError(
                f"cannot listen on {address} (ANALYTICS_GRPC_PORT, ANALYTICS_GRPC_HOST): in use, "
                "or not an address of this machine"
            )
        if settings.grpc_metrics_port is not None:
            try:
                self.metrics.serve(settings.grpc_host, settings.grpc_metrics_port, self.allowed_networks)
            except OSError as error:
                server.stop(None)
                raise GrpcStartError(
                    f"cannot serve metrics on {url_host(settings.grpc_host)}:{settings.grpc_metrics_port} "
                    f"(ANALYTICS_GRPC_METRICS_PORT): {error.strerror}"
                ) from None
        server.start()
        self._server = server
        if self.serving_model is not None:
            self.serving_model.start()
        services = ("", SERVICE_NAME)
        if settings.grpc_health_check_interval:
            self.store_watch = StoreWatch(self.health, self.backend, services, settings.grpc_health_check_interval)
            self.store_watch.check()  # a ClickHouse out of reach from the start is NOT_SERVING at once
            self.store_watch.start()
        else:
            for service in services:
                self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        security = "mutual TLS" if settings.grpc_tls_client_ca else "TLS" if self.credentials else "plaintext"
        log.info(
            "gRPC AnalyticsService on %s:%s (%s, %s, reflection %s) reading %s%s%s",
            url_host(settings.grpc_host),
            self.port,
            security,
            f"{len(self.tokens)} tokens" if self.tokens else "no tokens",
            "on" if settings.grpc_reflection else "off",
            self.backend.description,
            f"; metrics on :{self.metrics.port}/metrics" if self.metrics.port else "",
            "" if self.serving_model is None else f"; totals served from memory, {self.serving_model.promise}",
        )

    def stop(self) -> None:
        """NOT_SERVING, drain the calls in flight, stop; safe to call twice."""
        if self._server is None or self._stopped.is_set():
            return
        self.health.enter_graceful_shutdown()  # every service NOT_SERVING, and it stays so; watches end
        log.info("gRPC AnalyticsService draining (up to %ss)", self.settings.grpc_drain_seconds)
        if self.tail_hub is not None:
            self.tail_hub.close()  # tails end at once (UNAVAILABLE: call again), other calls finish
        self._server.stop(self.settings.grpc_drain_seconds).wait()
        for pool in (self._tail_threads, self._health_threads):
            if pool is not None:
                pool.shutdown(wait=False)
        if self.store_watch is not None:
            self.store_watch.close()
        if self.log_service is not None:
            self.log_service.close()
        if self.serving_model is not None:
            self.serving_model.close()
        self.metrics.stop()
        self.backend.close()
        self._stopped.set()
        log.info("gRPC AnalyticsService stopped")


def run_in_foreground(server: AnalyticsServer) -> None:
    """Serve until SIGTERM or Ctrl-C, then stop as `stop` describes."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    # The kernel may hand the signal to one of gRPC's threads; then only a main thread that wakes
    # up now and then runs the Python handler. An untimed wait could sleep through it for ever.
    while not stop.wait(0.5):
        pass
    server.stop()
