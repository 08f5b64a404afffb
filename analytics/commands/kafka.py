"""`analytics kafka`, `analytics topics` and `analytics ingest`: a local broker, the topics, the bridge."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from analytics.extras import requires
from analytics.settings import configure_logging, load_settings
from core.ports import CannotListen
from core.settings.kafka import IngestSettings, LocalKafkaSettings

NO_KAFKA = "no Kafka given: pass --kafka HOST:PORT or set ANALYTICS_KAFKA_BOOTSTRAP"


@click.command()
@click.option("--port", type=int, help="Broker port on 127.0.0.1 (ANALYTICS_KAFKA_PORT, default 9092).")
@click.option("--controller-port", type=int, help="KRaft controller port (ANALYTICS_KAFKA_CONTROLLER_PORT).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Kafka data directory (ANALYTICS_KAFKA_DATA_DIR).")
def kafka(port, controller_port, data_dir) -> None:
    """Run a local single-node Apache Kafka in the foreground until Ctrl-C or SIGTERM.

    The first run fetches the Kafka jars with Maven; it needs Java 17 or newer.
    """
    from embedded.kafka.broker import KafkaBroker, KafkaStartError
    from embedded.kafka.jars import KafkaUnavailable
    from embedded.kafka.supervise import run_in_foreground

    settings = load_settings(kafka_port=port, kafka_controller_port=controller_port, kafka_data_dir=data_dir)
    configure_logging(settings)
    broker = KafkaBroker.from_settings(settings.slice(LocalKafkaSettings))
    try:
        clean = run_in_foreground(broker, announce=lambda line: click.echo(line, err=True))
    except (KafkaUnavailable, KafkaStartError) as error:
        raise click.ClickException(str(error)) from None
    if not clean:
        raise click.ClickException(
            f"Kafka did not stop cleanly (exit {broker.process.returncode}); see {broker.log_path}"
        )


@click.command()
@click.option("--kafka", "bootstrap", help="Kafka bootstrap servers, HOST:PORT (ANALYTICS_KAFKA_BOOTSTRAP).")
@click.option(
    "--partitions", type=int, help="Partitions of each new topic (ANALYTICS_KAFKA_TOPIC_PARTITIONS, default 1)."
)
def topics(bootstrap, partitions) -> None:
    """Create the topics the product reads (after ANALYTICS_KAFKA_TOPIC_PREFIX), those that are missing;
    existing ones are left as they are."""
    from embedded.bridge.config import config_from, prepare_topics
    from embedded.kafka.topics import TopicError

    settings = load_settings(kafka_bootstrap=bootstrap, kafka_topic_partitions=partitions)
    configure_logging(settings)
    if settings.kafka_bootstrap is None:
        raise click.UsageError(NO_KAFKA)
    # The names the bridge (`analytics ingest`) reads, so the topics made here are the ones it needs.
    config = config_from(settings.slice(IngestSettings))
    try:
        states = prepare_topics(config, create=True, partitions=settings.kafka_topic_partitions)
    except TopicError as error:
        raise click.ClickException(str(error)) from None
    for state in states:
        click.echo(state.describe())


@click.command()
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
    settings = load_settings(kafka_bootstrap=bootstrap, clickhouse_url=clickhouse_url, ingest_metrics_port=metrics_port)
    configure_logging(settings)
    if not settings.kafka_bootstrap:
        raise click.UsageError(NO_KAFKA)
    with requires("embedded", "ingest"):
        from embedded.bridge.config import config_from, prepare_topics
        from embedded.bridge.metrics import serve_metrics
        from embedded.bridge.runner import Bridge
        from embedded.fault_points import FaultPointError
        from embedded.fault_points import check as check_fault_point
        from embedded.kafka.topics import TopicError

    config = config_from(settings.slice(IngestSettings))
    try:
        check_fault_point()
        if settings.ingest_metrics_port:
            serve_metrics(settings.ingest_metrics_port)  # a taken port is refused before anything is consumed
    except (FaultPointError, CannotListen) as error:
        raise click.ClickException(str(error)) from None
    try:
        states = prepare_topics(config, create=create_topics, partitions=settings.kafka_topic_partitions)
    except TopicError as error:
        raise click.ClickException(str(error)) from None
    for state in states:
        if state.created:  # the partitions are the setting's, not those of the topics beside it
            click.echo(f"{state.describe()} (ANALYTICS_KAFKA_TOPIC_PARTITIONS)", err=True)
    bridge = Bridge(config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: bridge.stop_event.set())
    bridge.start()
    click.echo(f"consuming {', '.join(config.kafka_topics)} from {config.bootstrap}", err=True)
    bridge.wait()
    if bridge.failures:
        raise click.ClickException(f"the bridge stopped: {bridge.failures[0]}")
