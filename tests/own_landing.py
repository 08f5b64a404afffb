"""A landing path of a test's own, in a database of its own, for tests of the bridge itself: the
table the bridge inserts the `jobs` topic's messages into, a view of the test's making from it
into `landed`, and dead letters; and a bridge run over it until its group has consumed the topic."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

from confluent_kafka import Producer

from core.settings.composed import Settings
from embedded.bridge.config import BridgeConfig, prepare_topics
from embedded.bridge.runner import Bridge
from tests.intake import execute
from tests.test_bridge import settings_for, wait_until_consumed


@dataclass
class OwnLanding:
    server: object
    kafka: object
    prefix: str
    database: str

    @property
    def settings(self) -> Settings:
        """What tells wait_until_consumed which consumer group to measure."""
        settings = settings_for(self.server, self.kafka, self.prefix)
        return settings.model_copy(update={"kafka_consumer_group_prefix": f"{self.prefix}group"})

    def config(self, **overrides) -> BridgeConfig:
        """The bridge's configuration for this landing path (the topic made), with these changes."""
        config = BridgeConfig(
            clickhouse_url=self.server.url,
            bootstrap=self.kafka.bootstrap,
            database=self.database,
            topic_prefix=self.prefix,
            group_prefix=f"{self.prefix}group",
            flush_interval_ms=500,
            max_backoff_s=0.5,
            topics=("jobs",),
        )
        config = dataclasses.replace(config, **overrides)
        prepare_topics(config, create=True, partitions=1)
        return config

    def produce(self, values: list[bytes]) -> None:
        producer = Producer({"bootstrap.servers": self.kafka.bootstrap})
        for value in values:
            producer.produce(self.prefix + "jobs", value)
        assert producer.flush(30) == 0

    def consume(self, config: BridgeConfig, timeout: float = 60) -> None:
        """Run a bridge until the topic is consumed, stop it and check that it met no failure."""
        bridge = Bridge(config)
        bridge.start()
        try:
            wait_until_consumed(self.kafka, self.settings, timeout)
        finally:
            bridge.stop()
        assert not bridge.failures

    def drop(self) -> None:
        execute(self.server, f"DROP DATABASE {self.database}")


def own_landing(server, kafka, landed_columns: str, view_select: str) -> OwnLanding:
    """`view_select` reads `{database}.jobs_messages` (payload, _topic, _partition, _offset,
    _timestamp_ms) and gives the `landed_columns`."""
    landing = OwnLanding(server, kafka, f"o{uuid.uuid4().hex[:8]}.", f"own_landing_{uuid.uuid4().hex[:8]}")
    database = landing.database
    for statement in (
        f"CREATE DATABASE {database}",
        f"""CREATE TABLE {database}.jobs_messages (payload String, _topic String, _partition UInt64,
            _offset UInt64, _timestamp_ms Nullable(DateTime64(3, 'UTC'))) ENGINE = Null""",
        f"CREATE TABLE {database}.landed ({landed_columns}) ENGINE = MergeTree ORDER BY tuple()",
        f"CREATE MATERIALIZED VIEW {database}.landed_mv TO {database}.landed AS "
        + view_select.format(database=database),
        f"CREATE TABLE {database}.dead_letters AS analytics.dead_letters",
    ):
        execute(server, statement)
    return landing
