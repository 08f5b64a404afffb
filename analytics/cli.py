"""The `analytics` command: one entry point for every part of the stack."""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

import click
from pydantic import ValidationError

from analytics.settings import Settings, environment_help


def load_settings(**flags) -> Settings:
    """Settings from the environment, overridden by the flags that were given."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        problems = "; ".join(_describe_problem(e) for e in error.errors())
        raise click.UsageError(f"invalid settings: {problems}") from None


def _describe_problem(error: dict) -> str:
    """'ANALYTICS_GRPC_PORT: ...' for a field's error; the bare message for one across fields."""
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message
    return f"ANALYTICS_{'_'.join(map(str, error['loc'])).upper()}: {message}"


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(
    epilog="Environment variables (flags override them):\n\n\b\n" + environment_help(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
def main() -> None:
    """ClickHouse-native analytics for workflows, jobs, job logs and product telemetry."""


@main.command()
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="chDB data directory (ANALYTICS_CLICKHOUSE_DATA_DIR)."
)
@click.option("--http-port", type=int, help="HTTP port (ANALYTICS_CLICKHOUSE_HTTP_PORT, default 8123).")
@click.option("--host", help="Listen address (ANALYTICS_CLICKHOUSE_HOST, default 127.0.0.1).")
@click.option("--user", help="User name clients must give (ANALYTICS_CLICKHOUSE_USER, default 'default').")
@click.option("--password", help="Password clients must give (ANALYTICS_CLICKHOUSE_PASSWORD, default none).")
@click.option(
    "--allow-file-access",
    is_flag=True,
    default=None,
    help="Let clients' SQL reach the server's files and network: file(), url(), INTO OUTFILE... "
    "(ANALYTICS_CLICKHOUSE_ALLOW_FILE_ACCESS, default off).",
)
def clickhouse(data_dir, http_port, host, user, password, allow_file_access) -> None:
    """Run the embedded ClickHouse (chDB behind the ClickHouse HTTP interface) in the foreground."""
    settings = load_settings(
        clickhouse_data_dir=data_dir,
        clickhouse_http_port=http_port,
        clickhouse_host=host,
        clickhouse_user=user,
        clickhouse_password=password,
        clickhouse_allow_file_access=allow_file_access,
    )
    _configure_logging(settings)
    _run_embedded_clickhouse(settings)


def _run_embedded_clickhouse(settings: Settings) -> None:
    from embedded.engine import DataDirectoryInUse
    from embedded.server import InsecureBind, serve_settings

    try:
        serve_settings(settings)
    except (DataDirectoryInUse, InsecureBind) as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option("--clickhouse-url", help="ClickHouse to build the schema in (ANALYTICS_CLICKHOUSE_URL).")
@click.option("--target", type=click.Choice(["embedded", "server"]), help="dbt target (ANALYTICS_DBT_TARGET).")
def migrate(clickhouse_url, target) -> None:
    """Build the analytics schema with dbt (dbt build): safe to run again at any time."""
    from analytics.migrate import migrate as run_migrate

    settings = load_settings(clickhouse_url=clickhouse_url, dbt_target=target)
    result = run_migrate(settings)
    if result.returncode != 0:
        raise click.ClickException(f"dbt build failed (exit {result.returncode}); see the output above")


@main.command()
@click.option(
    "--day",
    "days",
    multiple=True,
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="A day (UTC) to rebuild, YYYY-MM-DD; repeat for more days.",
)
@click.option("--clickhouse-url", help="ClickHouse to repair (ANALYTICS_CLICKHOUSE_URL).")
def backfill(days, clickhouse_url) -> None:
    """Rebuild the aggregates of the given days from the deduplicated raw history.

    Each day's workflow_daily and job_duration_daily partitions are replaced by a recomputation,
    and workflow_totals gets delta rows for the workflows of those days that were off. Safe to
    repeat: a second run changes nothing.
    """
    from analytics.backfill import BackfillFailed, rebuild_days

    settings = load_settings(clickhouse_url=clickhouse_url)
    try:
        summary = rebuild_days(settings, [moment.date() for moment in days])
    except BackfillFailed as error:
        raise click.ClickException(str(error)) from None
    for day, rows in sorted(summary.rows_by_day.items()):
        click.echo(f"{day}: rebuilt, {rows} workflow_daily rows")
    click.echo(f"workflow_totals: {summary.workflow_totals_corrected} workflows corrected")


@main.command()
@click.option("--port", type=int, help="Broker port on 127.0.0.1 (ANALYTICS_KAFKA_PORT, default 9092).")
@click.option("--controller-port", type=int, help="KRaft controller port (ANALYTICS_KAFKA_CONTROLLER_PORT).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Kafka data directory (ANALYTICS_KAFKA_DATA_DIR).")
def kafka(port, controller_port, data_dir) -> None:
    """Run a local single-node Apache Kafka in the foreground until Ctrl-C or SIGTERM.

    The first run fetches the Kafka jars with Maven; it needs Java 17 or newer.
    """
    from embedded.kafka_broker import KafkaBroker, KafkaStartError, KafkaUnavailable, run_in_foreground

    settings = load_settings(kafka_port=port, kafka_controller_port=controller_port, kafka_data_dir=data_dir)
    _configure_logging(settings)
    broker = KafkaBroker.from_settings(settings)
    try:
        clean = run_in_foreground(broker, announce=lambda line: click.echo(line, err=True))
    except (KafkaUnavailable, KafkaStartError) as error:
        raise click.ClickException(str(error)) from None
    if not clean:
        raise click.ClickException(
            f"Kafka did not stop cleanly (exit {broker.process.returncode}); see {broker.log_path}"
        )


@main.command()
@click.option("--kafka", "bootstrap", help="Kafka bootstrap servers, HOST:PORT (ANALYTICS_KAFKA_BOOTSTRAP).")
@click.option(
    "--partitions", type=int, help="Partitions of each new topic (ANALYTICS_KAFKA_TOPIC_PARTITIONS, default 1)."
)
def topics(bootstrap, partitions) -> None:
    """Create the topics the product reads, those that are missing; existing ones are left as they are."""
    from embedded.topics import TopicError, create_topics

    settings = load_settings(kafka_bootstrap=bootstrap, kafka_topic_partitions=partitions)
    _configure_logging(settings)
    if settings.kafka_bootstrap is None:
        raise click.UsageError("no Kafka given: pass --kafka HOST:PORT or set ANALYTICS_KAFKA_BOOTSTRAP")
    try:
        states = create_topics(settings.kafka_bootstrap, settings.kafka_topic_partitions)
    except TopicError as error:
        raise click.ClickException(str(error)) from None
    for state in states:
        click.echo(state.describe())


def stack_components(demo: bool = False, local_kafka: bool = False) -> list:
    """What `analytics up` runs next to the embedded ClickHouse, in start order."""
    from embedded import bridge
    from embedded.launcher import demo_component
    from server.service import grpc_component

    components = [_local_kafka_component] if local_kafka else []
    components += [bridge.component, grpc_component]
    if demo:
        components.append(demo_component)
    return components


def _local_kafka_component(settings, engine):
    from embedded.kafka_broker import BrokerComponent, KafkaBroker

    return BrokerComponent(KafkaBroker.from_settings(settings))


@main.command()
@click.option("--kafka", "bootstrap", help="Kafka bootstrap servers, HOST:PORT (ANALYTICS_KAFKA_BOOTSTRAP).")
@click.option("--clickhouse-url", help="ClickHouse with the schema (ANALYTICS_CLICKHOUSE_URL).")
@click.option(
    "--create-topics/--no-create-topics",
    default=True,
    show_default=True,
    help="Create missing topics at start; without, a missing topic is an error.",
)
@click.option("--metrics-port", type=int, help="Prometheus /metrics port (ANALYTICS_INGEST_METRICS_PORT; 0: off).")
def ingest(bootstrap, clickhouse_url, create_topics, metrics_port) -> None:
    """Consume the topics into the landing tables until SIGTERM (the Kafka engine's job, embedded)."""
    import signal

    from embedded.bridge import Bridge, config_from, prepare_topics, serve_metrics
    from embedded.topics import TopicError

    settings = load_settings(kafka_bootstrap=bootstrap, clickhouse_url=clickhouse_url, ingest_metrics_port=metrics_port)
    _configure_logging(settings)
    if not settings.kafka_bootstrap:
        raise click.UsageError("no Kafka given: pass --kafka HOST:PORT or set ANALYTICS_KAFKA_BOOTSTRAP")
    config = config_from(settings)
    try:
        prepare_topics(config, create=create_topics, partitions=settings.kafka_topic_partitions)
    except TopicError as error:
        raise click.ClickException(str(error)) from None
    bridge = Bridge(config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: bridge.stop_event.set())
    if settings.ingest_metrics_port:
        serve_metrics(settings.ingest_metrics_port)
    bridge.start()
    click.echo(
        f"consuming {', '.join(config.topic_prefix + t for t in config.topics)} from {config.bootstrap}", err=True
    )
    bridge.wait()
    if bridge.failures:
        raise click.ClickException(f"the bridge stopped: {bridge.failures[0]}")


@main.command()
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
@click.option("--metrics-port", type=int, help="Prometheus /metrics port (ANALYTICS_GRPC_METRICS_PORT, default off).")
@click.option(
    "--max-queued-calls",
    type=int,
    help="Calls waiting for a worker beyond those running; more are RESOURCE_EXHAUSTED (ANALYTICS_GRPC_MAX_QUEUED_CALLS).",
)
@click.option(
    "--serving-max-staleness",
    type=float,
    help="Serve the two totals lookups from memory, never older than this many seconds; 0 off "
    "(ANALYTICS_GRPC_SERVING_MAX_STALENESS).",
)
def grpc(**flags) -> None:
    """Serve the gRPC AnalyticsService, reading ClickHouse over HTTP, until Ctrl-C or SIGTERM."""
    from server.service import AnalyticsServer, GrpcStartError, http_backend, run_in_foreground

    # Every flag but --clickhouse-url is the setting grpc_<flag>.
    settings = load_settings(
        clickhouse_url=flags.pop("clickhouse_url"), **{f"grpc_{name}": value for name, value in flags.items()}
    )
    _configure_logging(settings)
    try:
        backend = http_backend(settings)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        run_in_foreground(AnalyticsServer(settings, backend))
    except GrpcStartError as error:
        raise click.ClickException(str(error)) from None


@main.command()
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
    from analytics.orchestrator import dagster_component
    from embedded.engine import DataDirectoryInUse
    from embedded.launcher import Stack
    from embedded.server import InsecureBind

    settings = load_settings(dagster_enabled=dagster_enabled, dagster_port=dagster_port)
    if with_kafka:
        settings = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{settings.kafka_port}"})
    _configure_logging(settings)
    try:
        components = stack_components(demo=demo, local_kafka=with_kafka) + [dagster_component]
        code = Stack(settings, components=components).run()
    except (DataDirectoryInUse, InsecureBind) as error:
        raise click.ClickException(str(error)) from None
    if code != 0:
        raise click.ClickException("the stack did not start; see the log above")


@main.command()
@click.option("--rate", type=float, help="Events per second (ANALYTICS_DEMO_RATE, default 50).")
@click.option("--users", type=int, help="Users to simulate (ANALYTICS_DEMO_USERS, default 20).")
@click.option("--duration", type=float, help="Seconds to run [default: until Ctrl-C].")
@click.option(
    "--sink",
    "sink_kind",
    type=click.Choice(["clickhouse", "kafka", "logger"]),
    help="Where events go (ANALYTICS_DEMO_SINK) [default: kafka if ANALYTICS_KAFKA_BOOTSTRAP is set, else clickhouse].",
)
@click.option("--seed", type=int, help="Random seed, to get the same stream again.")
def demo(rate, users, duration, sink_kind, seed) -> None:
    """Generate realistic workflow, job and log events and send them through the events SDK."""
    settings = load_settings(demo_rate=rate, demo_users=users, demo_sink=sink_kind)
    _configure_logging(settings)
    from events import Client
    from events.demo import demo_sink, run_demo, summary

    try:
        sink, destination = demo_sink(
            settings.demo_sink or ("kafka" if settings.kafka_bootstrap else "clickhouse"),
            kafka_bootstrap=settings.kafka_bootstrap,
            clickhouse_url=settings.resolved_clickhouse_url,
            clickhouse_user=settings.clickhouse_user,
            clickhouse_password=settings.clickhouse_password.get_secret_value(),
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(f"sending about {settings.demo_rate:g} events/s from {settings.demo_users} users to {destination}")
    with Client(sink) as client:
        counts = run_demo(
            client,
            rate=settings.demo_rate,
            users=settings.demo_users,
            duration=duration,
            seed=seed,
            report=lambda counts, stats: click.echo(summary(counts, stats, getattr(sink, "stats", None))),
        )
    delivery = getattr(sink, "stats", None)  # network sinks count deliveries; the logger sink does not
    click.echo(summary(counts, client.stats, delivery))
    if delivery is not None and delivery.rejected + delivery.failed:
        raise click.ClickException(f"{delivery.rejected + delivery.failed} events were not delivered (see the log)")


class _Stop(Exception):
    """SIGTERM or Ctrl-C arrived."""


def _raise_stop(signum, frame) -> None:
    raise _Stop()


@main.command()
@click.option("--port", type=int, help="Port of the Dagster UI (ANALYTICS_DAGSTER_PORT, default 3000).")
@click.option("--host", help="Address the UI listens on (ANALYTICS_DAGSTER_HOST, default 127.0.0.1).")
@click.option("--clickhouse-url", help="ClickHouse the assets and checks use (ANALYTICS_CLICKHOUSE_URL).")
def dagster(port, host, clickhouse_url) -> None:
    """Run the Dagster webserver and daemon alone, in the foreground until Ctrl-C or SIGTERM.

    They orchestrate the configured ClickHouse: the embedded one on ANALYTICS_CLICKHOUSE_HTTP_PORT,
    or the server at ANALYTICS_CLICKHOUSE_URL.
    """
    from analytics.orchestrator import DagsterService, DagsterStartError

    settings = load_settings(dagster_port=port, dagster_host=host, clickhouse_url=clickhouse_url)
    _configure_logging(settings)
    service = DagsterService(settings)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        service.wait_until_serving()
        while service.running():
            time.sleep(0.5)
        raise click.ClickException(f"the Dagster webserver or daemon exited; see the logs in {service.home}")
    except _Stop:
        pass
    except DagsterStartError as error:
        raise click.ClickException(str(error)) from None
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _add_commands() -> None:
    from analytics.dead_letters_cli import dead_letters

    main.add_command(dead_letters)


_add_commands()

if __name__ == "__main__":
    main()
