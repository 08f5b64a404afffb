"""`analytics up`: the whole stack on the embedded default."""

from __future__ import annotations

import click

from analytics.extras import check_installed, requires
from analytics.settings import configure_logging, load_settings
from core.ports import CannotListen, check_free


@click.command()
@click.option("--demo", is_flag=True, help="Also send realistic demo traffic, so numbers move within seconds.")
@click.option(
    "--with-kafka",
    is_flag=True,
    help="Also run a local Kafka broker (ANALYTICS_KAFKA_PORT) and ingest through it with the bridge.",
)
@click.option(
    "--dagster/--no-dagster",
    "dagster_enabled",
    default=None,
    help="Run the Dagster webserver and daemon (ANALYTICS_DAGSTER_ENABLED, default on).",
)
@click.option("--dagster-port", type=int, help="Port of the Dagster UI (ANALYTICS_DAGSTER_PORT, default 3000).")
def up(demo, with_kafka, dagster_enabled, dagster_port) -> None:
    """Start the whole stack on the embedded default and keep serving until Ctrl-C."""
    settings = load_settings(dagster_enabled=dagster_enabled, dagster_port=dagster_port)
    if with_kafka:
        settings = settings.model_copy(update={"kafka_bootstrap": _local_broker(settings)})
    if demo and settings.demo_sink == "kafka" and not settings.kafka_bootstrap:
        # Refused here: the demo thread would find out only after the stack had started.
        raise click.UsageError(
            "ANALYTICS_DEMO_SINK=kafka needs a Kafka: set ANALYTICS_KAFKA_BOOTSTRAP or add --with-kafka"
        )
    configure_logging(settings)
    with requires("stack", "up"):
        # Every part `up` may start, imported now: a missing one is named before anything starts.
        check_installed("dagster", "dagster_webserver", "dbt.version")  # they run as child processes
        import server.service  # noqa: F401
        from analytics.components import stack_components
        from analytics.stack import Stack
        from embedded.data_lock import DataDirectoryError

    if settings.clickhouse_url:
        raise click.ClickException(
            "`analytics up` runs its own ClickHouse (on ANALYTICS_CLICKHOUSE_HTTP_PORT); ANALYTICS_CLICKHOUSE_URL is "
            "for the commands that reach another one (grpc, migrate, backfill...): unset it for `up`"
        )
    _embedded_default(settings)
    _ports_free(settings, with_kafka)
    stack = Stack(settings, components=stack_components(demo=demo, local_kafka=with_kafka))
    try:
        code = stack.run()
    except (DataDirectoryError, CannotListen) as error:
        raise click.ClickException(str(error)) from None
    if code != 0:
        if stack.up.is_set():  # it had started and served: a part of it failed since
            raise click.ClickException("the stack stopped because a part of it failed; see the log above")
        raise click.ClickException("the stack did not start; see the log above")


def _local_broker(settings) -> str:
    """The bootstrap of the broker `--with-kafka` runs; one of another broker is refused, not left unread."""
    local = f"127.0.0.1:{settings.kafka_port}"
    given = (settings.kafka_bootstrap or "").strip()
    if given and given not in (local, f"localhost:{settings.kafka_port}"):
        raise click.UsageError(
            f"--with-kafka runs a broker on {local} (ANALYTICS_KAFKA_PORT) and ingests from it, but "
            f"ANALYTICS_KAFKA_BOOTSTRAP names {given}: unset it, or leave out --with-kafka to ingest from {given}"
        )
    return local


def _embedded_default(settings) -> None:
    """Refuse at once the settings of server mode: they failed after the schema build began, naming
    neither (a file-access error of the Kafka-engine tables, an unknown cluster)."""
    given = {
        "ANALYTICS_DBT_TARGET": settings.dbt_target if settings.dbt_target != "embedded" else None,
        "ANALYTICS_INGEST": settings.ingest if settings.ingest == "kafka" else None,
        "ANALYTICS_CLUSTER": settings.cluster or None,
    }
    if wrong := [f"{name}={value}" for name, value in given.items() if value is not None]:
        raise click.ClickException(
            f"`analytics up` runs the embedded default, where {', '.join(wrong)} cannot hold: they are for a "
            "ClickHouse server (`analytics migrate` with ANALYTICS_CLICKHOUSE_URL); unset them for `up` "
            "(`up --with-kafka` ingests through a local broker with the bridge)"
        )


def _ports_free(settings, with_kafka: bool) -> None:
    """Refuse at once a port another process listens on, or one port given to two parts, rather
    than after the schema is built (ClickHouse's own port is refused by the server as it starts)."""
    wanted = [("ANALYTICS_GRPC_PORT", settings.grpc_host, settings.grpc_port)]
    if settings.grpc_metrics_port:
        wanted.append(("ANALYTICS_GRPC_METRICS_PORT", settings.grpc_host, settings.grpc_metrics_port))
    if settings.dagster_enabled:
        wanted.append(("ANALYTICS_DAGSTER_PORT", settings.dagster_host, settings.dagster_port))
    if with_kafka:
        wanted.append(("ANALYTICS_KAFKA_PORT", "127.0.0.1", settings.kafka_port))
        if settings.kafka_controller_port:
            wanted.append(("ANALYTICS_KAFKA_CONTROLLER_PORT", "127.0.0.1", settings.kafka_controller_port))
    taken = {settings.clickhouse_http_port: "ANALYTICS_CLICKHOUSE_HTTP_PORT"}
    for variable, _, port in wanted:
        if port in taken:
            raise click.ClickException(
                f"{variable} and {taken[port]} are both {port}: give each part a port of its own"
            )
        taken[port] = variable
    hosts = {"ANALYTICS_GRPC_PORT": "ANALYTICS_GRPC_HOST", "ANALYTICS_GRPC_METRICS_PORT": "ANALYTICS_GRPC_HOST"}
    hosts["ANALYTICS_DAGSTER_PORT"] = "ANALYTICS_DAGSTER_HOST"
    try:
        for variable, host, port in wanted:
            # A host that is not this machine's is named as the host's variable, not the port's.
            check_free(
                host, port, variable, host_variable=hosts.get(variable, ""), holder="an `analytics up` already running"
            )
    except CannotListen as error:
        raise click.ClickException(str(error)) from None
