"""The bridge's Prometheus metrics, and the dead letters stored, read from ClickHouse when scraped."""

from __future__ import annotations

import logging

import urllib3
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from core.clickhouse.http import HttpClient, NoAnswer, ServerError
from core.ports import refusal

log = logging.getLogger(__name__)

MESSAGES = Counter("analytics_bridge_messages", "Messages consumed by the bridge", ["topic"])
INSERTED = Counter("analytics_bridge_inserted", "Messages inserted into the landing tables", ["topic"])
DEAD_LETTERED = Counter(
    "analytics_bridge_refused",
    "Messages the bridge wrote to dead_letters itself: ClickHouse refused to take them in, or the consumer "
    "could not decode them",
    ["topic"],
)
RETRIES = Counter(
    "analytics_bridge_insert_retries", "Inserts retried, by why (transient or unclassified)", ["topic", "reason"]
)
INSERT_SECONDS = Histogram("analytics_bridge_insert_seconds", "Time to insert one batch", ["topic"])
SKIPPED = Counter(
    "analytics_bridge_offsets_skipped",
    "Messages the broker no longer held when the bridge came to them (retention or DeleteRecords removed "
    "them first): never counted",
    ["topic"],
)
LAG = Gauge("analytics_bridge_consumer_lag", "Messages not yet committed", ["topic", "partition"])


class DeadLetterCollector:
    """`analytics_dead_letters{topic}`: the dead letters stored, read from ClickHouse when scraped
    (the landing views write them, so the bridge cannot count them itself)."""

    def __init__(self) -> None:
        self.clients: dict[tuple[str, str, str], HttpClient] = {}
        self.databases: dict[tuple[str, str, str], str] = {}

    def watch(self, url: str, database: str, user: str, password: str) -> tuple[str, str, str]:
        key = (url, user, database)
        if key not in self.clients:
            self.clients[key] = HttpClient(url, user, password, timeout=urllib3.Timeout(connect=2, read=5))
            self.databases[key] = database
        return key

    def forget(self, key: tuple[str, str, str]) -> None:
        client = self.clients.pop(key, None)
        self.databases.pop(key, None)
        if client is not None:
            client.close()

    def collect(self):
        family = GaugeMetricFamily("analytics_dead_letters", "Dead letters stored, by Kafka topic", labels=["topic"])
        for key, client in list(self.clients.items()):
            database = self.databases.get(key, "analytics")
            sql = f"SELECT topic, count() FROM {database}.dead_letters FINAL GROUP BY topic FORMAT TSV"
            try:
                answer = client.post({}, sql.encode())
            except (NoAnswer, ServerError):
                continue
            for line in answer.decode(errors="replace").splitlines():
                topic, _, count = line.rpartition("\t")
                family.add_metric([topic], float(count))
        yield family


DEAD_LETTERS = DeadLetterCollector()
REGISTRY.register(DEAD_LETTERS)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """The process's metrics (the bridge's among them) at http://host:port/metrics; ``CannotListen``
    naming ANALYTICS_INGEST_METRICS_PORT when another process has the port."""
    try:
        start_http_server(port, addr=host)
    except OSError as error:
        raise refusal(host, port, error, "ANALYTICS_INGEST_METRICS_PORT") from None
    log.info("Prometheus metrics on http://%s:%d/metrics", host, port)
