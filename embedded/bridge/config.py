"""What the bridge consumes and where it inserts, from the settings slice; the topics made ready."""

from __future__ import annotations

from dataclasses import dataclass

from core.names import TOPICS
from core.settings.kafka import IngestSettings
from embedded.kafka.topics import TopicState, create_topics, require_topics


@dataclass(frozen=True)
class BridgeConfig:
    clickhouse_url: str
    bootstrap: str
    database: str = "analytics"
    user: str = "default"
    password: str = ""
    topic_prefix: str = ""
    group_prefix: str = "analytics"
    consumers_per_topic: int = 1
    instance_name: str = ""  # static membership: "" is the host name
    max_block_size: int = 65536
    max_block_bytes: int = 64 * 1024 * 1024
    # The most a record batch may decompress to (librdkafka's receive.message.max.bytes, 100 MB by
    # default). The broker's limit is on a batch as sent: a producer that batches compressed bytes
    # (Java's batch.size) sends events each under the limit in a batch that decompresses to more.
    max_batch_bytes: int = 1 << 30
    flush_interval_ms: int = 500
    lag_interval_s: float = 5.0
    session_timeout_ms: int = 10_000
    max_backoff_s: float = 10.0
    topics: tuple[str, ...] = TOPICS

    @property
    def kafka_topics(self) -> tuple[str, ...]:
        """The topics as Kafka names them: the deployment's prefix, then the product's name."""
        return tuple(self.topic_prefix + topic for topic in self.topics)


def config_from(settings: IngestSettings, clickhouse_url: str | None = None) -> BridgeConfig:
    """The bridge's configuration from the project's settings object."""
    return BridgeConfig(
        clickhouse_url=clickhouse_url or settings.resolved_clickhouse_url,
        bootstrap=settings.kafka_bootstrap,
        user=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        topic_prefix=settings.kafka_topic_prefix,
        group_prefix=settings.kafka_consumer_group_prefix,
        consumers_per_topic=settings.kafka_consumers,
        instance_name=settings.kafka_instance_name,
        max_block_size=settings.kafka_max_block_size,
        max_block_bytes=settings.kafka_max_block_bytes,
        flush_interval_ms=settings.kafka_flush_interval_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )


def prepare_topics(config: BridgeConfig, create: bool, partitions: int) -> list[TopicState]:
    """Create the topics (or, when told not to, insist that they exist) before consuming; what was done."""
    if create:
        return create_topics(config.bootstrap, partitions, names=config.kafka_topics)
    require_topics(config.bootstrap, names=config.kafka_topics)
    return []
