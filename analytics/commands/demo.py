"""`analytics demo`: realistic traffic through the events SDK, to ClickHouse, Kafka or the log."""

from __future__ import annotations

import click

from analytics.demo_traffic import demo_destination
from analytics.settings import configure_logging, load_settings
from core.settings.demo import DemoSettings


@click.command()
@click.option("--rate", type=float, help="Events per second (ANALYTICS_DEMO_RATE, default 50).")
@click.option("--users", type=int, help="Users to simulate (ANALYTICS_DEMO_USERS, default 20).")
@click.option("--duration", type=click.FloatRange(0, min_open=True), help="Seconds to run [default: until Ctrl-C].")
@click.option(
    "--sink",
    "sink_kind",
    type=click.Choice(["clickhouse", "kafka", "logger"]),
    help="Where events go (ANALYTICS_DEMO_SINK) [default: kafka if ANALYTICS_KAFKA_BOOTSTRAP is set, else clickhouse].",
)
@click.option("--seed", type=int, help="Random seed, to get the same stream again.")
def demo(rate, users, duration, sink_kind, seed) -> None:
    """Generate realistic workflow, job and log events and send them through the events SDK."""
    loaded = load_settings(demo_rate=rate, demo_users=users, demo_sink=sink_kind)
    configure_logging(loaded)
    settings = loaded.slice(DemoSettings)
    from events import Client
    from events.demo import delivery, run_demo, summary, undelivered

    try:
        sink, destination = demo_destination(settings, settings.demo_sink)
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
            report=lambda counts, stats: click.echo(summary(counts, stats, delivery(sink))),
        )
    click.echo(summary(counts, client.stats, delivery(sink), closed=True))
    if lost := undelivered(client.stats, delivery(sink)):
        raise click.ClickException(f"{lost} events were not delivered (see the log)")
