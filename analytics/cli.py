"""The `analytics` command: one entry point for every part of the stack."""

from __future__ import annotations

import logging
import sys
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
        problems = "; ".join(f"ANALYTICS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise click.UsageError(f"invalid settings: {problems}") from None


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
def clickhouse(data_dir, http_port, host, user, password) -> None:
    """Run the embedded ClickHouse (chDB behind the ClickHouse HTTP interface) in the foreground."""
    settings = load_settings(
        clickhouse_data_dir=data_dir,
        clickhouse_http_port=http_port,
        clickhouse_host=host,
        clickhouse_user=user,
        clickhouse_password=password,
    )
    _configure_logging(settings)
    _run_embedded_clickhouse(settings)


def _run_embedded_clickhouse(settings: Settings) -> None:
    from embedded.engine import DataDirectoryInUse
    from embedded.server import InsecureBind, serve

    try:
        serve(
            data_dir=settings.resolved_clickhouse_data_dir,
            host=settings.clickhouse_host,
            port=settings.clickhouse_http_port,
            user=settings.clickhouse_user,
            password=settings.clickhouse_password.get_secret_value(),
            max_concurrent_queries=settings.clickhouse_max_concurrent_queries,
            log_level=settings.log_level,
        )
    except (DataDirectoryInUse, InsecureBind) as error:
        raise click.ClickException(str(error)) from None


@main.command()
def up() -> None:
    """Start the whole stack on the embedded default and keep serving until Ctrl-C."""
    settings = load_settings()
    _configure_logging(settings)
    _run_embedded_clickhouse(settings)


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


if __name__ == "__main__":
    main()
