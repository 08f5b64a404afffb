"""`analytics topics` under ANALYTICS_KAFKA_TOPIC_PREFIX makes the topics the bridge reads, on a real broker."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import AdminClient

from analytics.cli import main
from core.names import TOPICS
from embedded.bridge.config import config_from, prepare_topics

pytestmark = pytest.mark.kafka


def test_topics_command_creates_the_prefixed_topics_the_bridge_requires(analytics_db, kafka):
    prefix = f"p{uuid.uuid4().hex[:8]}."
    result = CliRunner().invoke(
        main,
        ["topics", "--kafka", kafka.bootstrap],
        env={"ANALYTICS_KAFKA_TOPIC_PREFIX": prefix},
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{prefix}{name}: created, 1 partition" for name in TOPICS]
    listed = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=30).topics
    assert {prefix + name for name in TOPICS} <= set(listed)

    # `analytics ingest --no-create-topics` with the same prefix now finds every topic it consumes.
    settings = analytics_db.settings(kafka_bootstrap=kafka.bootstrap, kafka_topic_prefix=prefix)
    prepare_topics(config_from(settings), create=False, partitions=1)
