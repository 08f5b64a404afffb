"""Kafka: the topics' consumers (Kafka engine or the embedded bridge), and the local broker."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from core.settings.clickhouse import ClickHouseSettings
from core.settings.common import CommonSettings, Directory


class KafkaSettings(BaseModel):
    """How the topics are named and consumed; the Kafka engine (server mode) and the bridge share these."""

    kafka_topic_prefix: str = Field(
        "",
        max_length=200,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Prepended to every topic name (e.g. 'prod.'); letters, digits, '.', '_' and '-', as in Kafka.",
    )
    kafka_consumer_group_prefix: str = Field("analytics", description="Consumer groups are PREFIX_<topic>.")
    kafka_consumers: int = Field(1, ge=1, le=256, description="Consumers per topic (Kafka engine and bridge).")
    kafka_instance_name: str = Field(
        "",
        description="This bridge process's name in its consumer groups (static membership); two bridges on "
        "one host need different names [default: the host name].",
    )
    kafka_session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        le=1_800_000,
        description="How long a consumer group waits for a bridge that stopped before its partitions go to the "
        "other bridges (Kafka's session.timeout.ms; heartbeats every third of it; the broker's "
        "group.min/max.session.timeout.ms bound it).",
    )
    kafka_max_block_size: int = Field(65536, ge=1, description="Messages per insert (Kafka engine and bridge).")
    kafka_max_block_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Bytes of messages per bridge insert: a block of large messages is inserted before it holds "
        "kafka_max_block_size of them, bounding the bridge's memory (two batches a consumer: one being "
        "inserted, one filling) and the insert's.",
    )
    kafka_flush_interval_ms: int = Field(
        250,
        ge=1,
        le=3_600_000,
        description="Longest wait before a partial batch is inserted (from when the consumer's insert before it "
        "started; it waits for that one to be in).",
    )
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]; unset means no Kafka."
    )
    # Kafka takes a topic's partitions as a signed 32-bit number; a larger one crashed the client.
    kafka_topic_partitions: int = Field(
        1, ge=1, le=2**31 - 1, description="Partitions of each topic `analytics topics` creates."
    )
    ingest_metrics_port: int = Field(
        9363, ge=0, le=65535, description="Port of `analytics ingest`'s Prometheus /metrics on 127.0.0.1; 0: off."
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{server.strip()!r} is not HOST:PORT")
        return value


class LocalKafkaSettings(CommonSettings):
    """The local Apache Kafka of `analytics kafka` (a single KRaft node on 127.0.0.1)."""

    kafka_port: int = Field(9092, ge=1, le=65535, description="Port of the local Kafka broker.")
    kafka_controller_port: int | None = Field(
        None, ge=1, le=65535, description="KRaft controller port of the local Kafka [default: a free port]."
    )
    kafka_data_dir: Directory | None = Field(
        None, description="Local Kafka data directory [default: DATA_DIR/kafka-data]."
    )
    kafka_stop_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds the local Kafka gets to shut down on SIGTERM before it is killed."
    )

    @property
    def resolved_kafka_data_dir(self) -> Path:
        return self.kafka_data_dir or self.data_dir / "kafka-data"

    @property
    def kafka_jars_dir(self) -> Path:
        """Cache of the Kafka jars Maven fetches, one folder per Kafka version."""
        return self.data_dir / "kafka"


class IngestSettings(ClickHouseSettings, KafkaSettings):
    """The Kafka bridge (`analytics ingest`): the topics it consumes and the ClickHouse it inserts into."""
