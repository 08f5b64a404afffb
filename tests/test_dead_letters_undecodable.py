"""A dead letter whose bytes the bridge never read (a record batch the consumer could not decode)
and its replay, against a real broker, the real bridge and `analytics dead-letters replay`."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from analytics.cli import main
from embedded.bridge.config import config_from, prepare_topics
from tests.intake import query
from tests.malformed import valid_event
from tests.test_bridge import consume_with_a_bridge, settings_for

pytestmark = pytest.mark.kafka


def stored_letters(server, kafka_topic: str) -> list[tuple[int, str, str]]:
    rows = query(
        server,
        f"""SELECT offset, raw_message, error FROM analytics.dead_letters FINAL
            WHERE topic = '{kafka_topic}' ORDER BY offset""",
    )
    return [(int(row["offset"]), row["raw_message"], row["error"]) for row in rows]


def test_a_dead_letter_the_bridge_could_not_decode_is_not_replayed_as_an_empty_message(analytics_db, kafka):
    """Its bytes stay on the broker: a replay fed back nothing in their place, and the dead letter's
    error became 'the message is empty', the reason and where the bytes are lost."""
    prefix = f"u{uuid.uuid4().hex[:8]}."
    user = f"{prefix}user"
    settings = settings_for(analytics_db, kafka, prefix)
    # librdkafka's default receive.message.max.bytes: the bridge allows more, and 100 MiB is past it.
    config = dataclasses.replace(
        config_from(settings), topics=("jobs",), flush_interval_ms=100, max_batch_bytes=100_000_000
    )
    prepare_topics(config, create=True, partitions=1)
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "compression.type": "zstd", "message.max.bytes": 200_000_000}
    )
    # 100 MiB that zstd compresses into a few KB: the broker takes it, no consumer can decompress it.
    for value in (json.dumps(valid_event("jobs", 0, user)).encode(), b"a" * (100 << 20)):
        producer.produce(prefix + "jobs", value)
        assert producer.flush(60) == 0  # a record batch each
    consume_with_a_bridge(kafka, settings, config)
    [(offset, raw, error)] = stored_letters(analytics_db, prefix + "jobs")
    assert (offset, raw) == (1, "") and error.startswith("the bridge could not decode this message")

    env = {"ANALYTICS_CLICKHOUSE_HTTP_PORT": str(analytics_db.port), "ANALYTICS_KAFKA_TOPIC_PREFIX": prefix}
    for dry_run in (["--dry-run"], []):
        said = CliRunner().invoke(main, ["dead-letters", "replay", "--topic", "jobs", *dry_run], env=env)
        assert said.exit_code == 0, said.output
        assert "skipped 1: its bytes were never read" in said.output, said.output
    assert "replayed 0: 0 taken in, 0 still failing" in said.output
    assert stored_letters(analytics_db, prefix + "jobs") == [(offset, raw, error)]
    [totals] = query(analytics_db, f"SELECT total_jobs FROM analytics.user_totals WHERE user_id = '{user}'")
    assert int(totals["total_jobs"]) == 1
