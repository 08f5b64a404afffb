"""Demo traffic as the wiring sends it: the SDK's generator, to Kafka when there is one, else ClickHouse."""

from __future__ import annotations

import logging
import threading

from core.settings.demo import DemoSettings

log = logging.getLogger(__name__)


def demo_destination(settings: DemoSettings, kind: str | None = None):
    """(sink, description) for the demo: `kind`, else kafka with a bootstrap, else clickhouse."""
    from events.demo import demo_sink

    return demo_sink(
        kind or ("kafka" if settings.kafka_bootstrap else "clickhouse"),
        kafka_bootstrap=settings.kafka_bootstrap,
        clickhouse_url=settings.resolved_clickhouse_url,
        clickhouse_user=settings.clickhouse_user,
        clickhouse_password=settings.clickhouse_password.get_secret_value(),
    )


def run_logged_demo(settings: DemoSettings, stop: threading.Event) -> None:
    """`up --demo`: send until ``stop`` is set, reporting to the log."""
    from events import Client
    from events.demo import delivery, run_demo, summary, undelivered

    sink, destination = demo_destination(settings, settings.demo_sink)
    log.info(
        "demo traffic: about %g events/s from %d users to %s", settings.demo_rate, settings.demo_users, destination
    )
    with Client(sink) as client:
        counts = run_demo(
            client,
            rate=settings.demo_rate,
            users=settings.demo_users,
            should_stop=stop.is_set,
            report=lambda c, s: log.info("demo: %s", summary(c, s, delivery(sink))),
            report_every=30,
        )
    log.info("demo traffic stopped: %s", summary(counts, client.stats, delivery(sink), closed=True))
    if lost := undelivered(client.stats, delivery(sink)):
        log.warning("demo traffic: %d events were not delivered (see the log above)", lost)
