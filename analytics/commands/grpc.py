"""`analytics grpc`: the gRPC AnalyticsService alone, against any ClickHouse over HTTP (server mode)."""

from __future__ import annotations

from pathlib import Path

import click

from analytics.extras import requires
from analytics.settings import configure_logging, load_settings
from core.settings.grpc import GrpcSettings


@click.command()
@click.option("--port", type=int, help="Port (ANALYTICS_GRPC_PORT, default 50055).")
@click.option("--host", help="Listen address (ANALYTICS_GRPC_HOST, default 127.0.0.1).")
@click.option(
    "--clickhouse-url",
    help="ClickHouse to read, http(s)://HOST:PORT (ANALYTICS_CLICKHOUSE_URL) [default: the embedded one].",
)
@click.option(
    "--reflection/--no-reflection", default=None, help="Server reflection (ANALYTICS_GRPC_REFLECTION, default on)."
)
@click.option(
    "--id-format", type=click.Choice(["plain", "uuid"]), help="Ids accepted (ANALYTICS_GRPC_ID_FORMAT, default plain)."
)
@click.option("--workers", type=int, help="Worker threads, one ClickHouse connection each (ANALYTICS_GRPC_WORKERS).")
@click.option(
    "--tokens-file", type=click.Path(path_type=Path), help="'TOKEN USER_ID' lines (ANALYTICS_GRPC_TOKENS_FILE)."
)
@click.option("--tls-cert", type=click.Path(path_type=Path), help="PEM certificate chain (ANALYTICS_GRPC_TLS_CERT).")
@click.option("--tls-key", type=click.Path(path_type=Path), help="PEM private key (ANALYTICS_GRPC_TLS_KEY).")
@click.option(
    "--tls-client-ca",
    type=click.Path(path_type=Path),
    help="PEM CA of client certificates: mutual TLS (ANALYTICS_GRPC_TLS_CLIENT_CA).",
)
@click.option(
    "--allowed-networks",
    help="Addresses and CIDR networks, comma-separated, whose calls are answered; loopback always "
    "(ANALYTICS_GRPC_ALLOWED_NETWORKS, default every address).",
)
@click.option("--metrics-port", type=int, help="Prometheus /metrics port (ANALYTICS_GRPC_METRICS_PORT, default off).")
@click.option(
    "--max-queued-calls",
    type=int,
    help="Calls waiting for a worker beyond those running; more are RESOURCE_EXHAUSTED "
    "(ANALYTICS_GRPC_MAX_QUEUED_CALLS).",
)
@click.option(
    "--serving-max-staleness",
    type=float,
    help="Serve the two totals lookups from memory, never older than this many seconds; 0 or unset: off "
    "(ANALYTICS_GRPC_SERVING_MAX_STALENESS).",
)
def grpc(**flags) -> None:
    """Serve the gRPC AnalyticsService, reading ClickHouse over HTTP, until Ctrl-C or SIGTERM."""
    # Every flag but --clickhouse-url is the setting grpc_<flag>.
    settings = load_settings(
        clickhouse_url=flags.pop("clickhouse_url"), **{f"grpc_{name}": value for name, value in flags.items()}
    )
    if settings.grpc_metrics_port == settings.grpc_port:
        # Else the metrics server failed with 'Address already in use' of a port no other process held.
        raise click.UsageError(
            f"--metrics-port (ANALYTICS_GRPC_METRICS_PORT) and --port (ANALYTICS_GRPC_PORT) are both "
            f"{settings.grpc_port}: give each its own"
        )
    configure_logging(settings)
    with requires("server", "grpc"):
        from server.service import AnalyticsServer, GrpcStartError, run_in_foreground

    from core.clickhouse.backend import HttpBackend

    try:
        backend = HttpBackend(
            settings.resolved_clickhouse_url,
            user=settings.clickhouse_user,
            password=settings.clickhouse_password.get_secret_value(),
            secure=settings.clickhouse_secure,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        run_in_foreground(AnalyticsServer(settings.slice(GrpcSettings), backend))
    except GrpcStartError as error:
        raise click.ClickException(str(error)) from None
