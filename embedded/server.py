"""Run the embedded ClickHouse: chDB plus its HTTP interface, in the foreground."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from core.networks import AllowedNetworks
from core.ports import CannotListen, bound
from core.settings.clickhouse import EmbeddedClickHouseSettings
from embedded.allowed_clients import AllowedClients
from embedded.engine import Engine
from embedded.http import FrontConfig, create_app
from embedded.http_metrics import MetricsMiddleware, Registries
from embedded.request_heads import BoundedHeadProtocol

log = logging.getLogger(__name__)


class InsecureBind(CannotListen):
    """A non-loopback address without a password."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def check_bind(host: str, password: str, allowed: AllowedNetworks | None = None) -> None:
    """A non-loopback address needs a password, or an allow-list narrower than every address."""
    if is_loopback(host) or password or (allowed is not None and not allowed.covers_every_address):
        return
    raise InsecureBind(
        f"refusing to listen on {host} without a password: set --password (ANALYTICS_CLICKHOUSE_PASSWORD), "
        "name the networks it serves (ANALYTICS_CLICKHOUSE_ALLOWED_NETWORKS) or listen on 127.0.0.1"
    )


def listen(host: str, port: int) -> socket.socket:
    """The interface's listening socket, bound before chDB opens, so a taken port is named at once."""
    return bound(
        host,
        port,
        "ANALYTICS_CLICKHOUSE_HTTP_PORT",
        host_variable="ANALYTICS_CLICKHOUSE_HOST",
        holder="an embedded ClickHouse already running",
    )


def serve(
    data_dir: Path,
    host: str,
    port: int,
    user: str = "default",
    password: str = "",
    max_concurrent_queries: int = 64,
    allow_file_access: bool = False,
    async_insert: bool = False,
    log_level: str = "info",
    extra_lifespan=None,
    on_server: Callable[[uvicorn.Server], None] | None = None,
    server_class: type[uvicorn.Server] = uvicorn.Server,
    metrics: Registries | None = None,
    allowed_networks: str | None = None,
) -> None:
    """Own ``data_dir`` with chDB and serve the ClickHouse HTTP interface until SIGTERM or Ctrl-C.

    On a signal uvicorn stops accepting connections and lets in-flight requests finish; then
    ``extra_lifespan`` (the launcher's components) ends, every chDB connection is closed and the
    data directory released. ``GET /metrics`` serves the interface's Prometheus metrics and those
    of ``metrics`` (by default the process's default registry). With ``allowed_networks`` only
    clients from those networks (and loopback) are served (embedded/allowed_clients.py).
    """
    allowed = AllowedNetworks.from_setting(allowed_networks, "ANALYTICS_CLICKHOUSE_ALLOWED_NETWORKS")
    check_bind(host, password, allowed)
    listener = listen(host, port)
    # A client that disconnects while we write to a FIFO must raise BrokenPipeError, not kill us.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    engine = Engine(data_dir, pool_size=max(4, max_concurrent_queries // 4))
    try:
        engine.open()
        app = create_app(
            engine,
            FrontConfig(
                user=user,
                password=password,
                max_concurrent_queries=max_concurrent_queries,
                allow_file_access=allow_file_access,
                async_insert=async_insert,
            ),
            extra_lifespan=extra_lifespan,
        )
        measured = MetricsMiddleware(app, metrics)
        app.state.front.count_written_rows = measured.count_written_rows
        app.state.front.count_late_refusal = measured.count_late_refusal
        config = uvicorn.Config(
            measured if allowed is None else AllowedClients(measured, allowed, engine.version, measured.count_refused),
            host=host,
            port=port,
            log_level=log_level.lower(),
            access_log=False,
            http=BoundedHeadProtocol,  # httptools, with bounded request heads
            loop="uvloop",
            timeout_keep_alive=10,
            timeout_graceful_shutdown=30,
            lifespan="on",
        )
        server = _reporting(server_class, measured)(config)
        if on_server is not None:
            on_server(server)
        log.info("embedded ClickHouse %s on http://%s:%d (data in %s)", engine.version, host, port, data_dir)
        server.run(sockets=[listener])
    finally:
        listener.close()
        engine.close()


# A stop waits for the requests in flight (up to timeout_graceful_shutdown); after this long it names them.
REPORT_UNFINISHED_AFTER = 2.0


def _reporting(server_class: type[uvicorn.Server], measured: MetricsMiddleware) -> type[uvicorn.Server]:
    """``server_class`` whose stop logs the requests it still waits for, once they have held it a while."""

    class ReportingServer(server_class):
        async def shutdown(self, sockets=None) -> None:
            async def report() -> None:
                await asyncio.sleep(REPORT_UNFINISHED_AFTER)
                if unfinished := measured.unfinished():
                    log.warning(
                        "stopping: waiting for %d request(s) still in flight:\n  %s",
                        len(unfinished),
                        "\n  ".join(unfinished),
                    )

            reporter = asyncio.create_task(report())
            try:
                await super().shutdown(sockets)
            finally:
                reporter.cancel()

    return ReportingServer


def serve_settings(settings: EmbeddedClickHouseSettings, **extra) -> None:
    """`serve` with the embedded ClickHouse's settings slice."""
    serve(
        data_dir=settings.resolved_clickhouse_data_dir,
        host=settings.clickhouse_host,
        port=settings.clickhouse_http_port,
        user=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        max_concurrent_queries=settings.clickhouse_max_concurrent_queries,
        allow_file_access=settings.clickhouse_allow_file_access,
        async_insert=settings.clickhouse_async_insert,
        log_level=settings.log_level,
        allowed_networks=settings.clickhouse_allowed_networks,
        **extra,
    )
