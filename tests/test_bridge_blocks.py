"""How the bridge cuts a topic's messages into inserts, read back by the real embedded ClickHouse
from a real broker: a block ends at the size in messages or in bytes, whichever comes first, so a
backlog of large messages is inserted in blocks of bounded bytes, in order, nothing left out."""

from __future__ import annotations

import uuid

import pytest

from embedded.bridge.config import BridgeConfig, prepare_topics
from embedded.bridge.runner import Bridge
from tests.intake import execute, query
from tests.test_bridge import settings_for, wait_until_consumed
from tests.test_bridge_errors import produce

pytestmark = pytest.mark.kafka

MESSAGE_BYTES = 300_000
BLOCK_BYTES = 1024 * 1024  # three such messages


def test_a_backlog_of_large_messages_is_inserted_in_blocks_of_bounded_bytes(analytics_db, kafka):
    prefix, database = f"b{uuid.uuid4().hex[:8]}.", f"bridge_blocks_{uuid.uuid4().hex[:8]}"
    settings = settings_for(analytics_db, kafka, prefix)
    execute(analytics_db, f"CREATE DATABASE {database}")
    execute(
        analytics_db,
        f"""CREATE TABLE {database}.jobs_messages (payload String, _topic String, _partition UInt64,
            _offset UInt64, _timestamp_ms Nullable(DateTime64(3, 'UTC'))) ENGINE = Null""",
    )
    # Each row records how many rows its insert held.
    execute(
        analytics_db,
        f"CREATE TABLE {database}.landed (offset UInt64, block_rows UInt64) ENGINE = MergeTree ORDER BY offset",
    )
    execute(
        analytics_db,
        f"""CREATE MATERIALIZED VIEW {database}.landed_mv TO {database}.landed AS
            SELECT _offset AS offset, count() OVER () AS block_rows FROM {database}.jobs_messages""",
    )
    config = BridgeConfig(
        clickhouse_url=analytics_db.url,
        bootstrap=kafka.bootstrap,
        database=database,
        topic_prefix=prefix,
        group_prefix=f"{prefix}group",
        flush_interval_ms=2000,  # the whole backlog arrives within one interval
        max_block_bytes=BLOCK_BYTES,
        topics=("jobs",),
    )
    prepare_topics(config, create=True, partitions=1)
    produce(kafka, prefix + "jobs", [bytes([65 + n % 26]) * MESSAGE_BYTES for n in range(40)])
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings.model_copy(update={"kafka_consumer_group_prefix": f"{prefix}group"}), 60)
    finally:
        bridge.stop()
    assert not bridge.failures
    landed = query(analytics_db, f"SELECT offset, block_rows FROM {database}.landed ORDER BY offset")
    assert [int(row["offset"]) for row in landed] == list(range(40))
    blocks = [int(row["block_rows"]) for row in landed]
    assert max(blocks) == BLOCK_BYTES // MESSAGE_BYTES, blocks
    execute(analytics_db, f"DROP DATABASE {database}")
