"""How the bridge answers ClickHouse's errors, against a real broker and the real embedded ClickHouse:
a state that passes (ClickHouse unreachable) is waited out, and an error code nobody classified is
retried a few times, then taken as the data's fault: the message is dead-lettered, its neighbours
land, and the partition moves on."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer

from core.errors import DATA_ERRORS, TRANSIENT_ERRORS
from embedded.bridge.config import BridgeConfig, prepare_topics
from embedded.bridge.metrics import RETRIES
from embedded.bridge.runner import Bridge
from embedded.bridge.writer import Verdict, classify
from tests.embedded_server import free_port
from tests.events_support import TcpForwarder
from tests.intake import execute, query
from tests.test_bridge import settings_for, wait_until_consumed

pytestmark = pytest.mark.kafka


def test_the_error_classes_do_not_overlap_and_an_unknown_code_is_unclassified():
    assert not TRANSIENT_ERRORS & DATA_ERRORS
    assert classify(500, 241) is Verdict.TRANSIENT  # MEMORY_LIMIT_EXCEEDED
    assert classify(500, 33) is Verdict.DATA  # CANNOT_READ_ALL_DATA: a truncated message, never retried forever
    assert classify(503, 0) is Verdict.TRANSIENT  # a proxy's "not now"
    assert classify(500, 153) is Verdict.UNCLASSIFIED
    assert classify(500, 252, "Too many parts (3000). Merges are processing ...") is Verdict.TRANSIENT
    assert classify(500, 252, "Too many partitions for single INSERT block (more than 100)") is Verdict.DATA


def schema(server, database: str) -> None:
    """A landing path of our own whose view divides by zero (ILLEGAL_DIVISION, unclassified) on one message."""
    for statement in (
        f"CREATE DATABASE {database}",
        f"""CREATE TABLE {database}.jobs_messages (payload String, _topic String, _partition UInt64,
            _offset UInt64, _timestamp_ms Nullable(DateTime64(3, 'UTC'))) ENGINE = Null""",
        f"CREATE TABLE {database}.landed (payload String, offset UInt64) ENGINE = MergeTree ORDER BY offset",
        f"""CREATE MATERIALIZED VIEW {database}.landed_mv TO {database}.landed AS
            SELECT payload, _offset AS offset FROM {database}.jobs_messages
            WHERE intDiv(1, if(payload = 'poison', 0, 1)) = 1""",
        f"CREATE TABLE {database}.dead_letters AS analytics.dead_letters",
    ):
        execute(server, statement)


def produce(kafka, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0


def test_an_unreachable_clickhouse_is_waited_for_and_an_unclassified_error_is_dead_lettered(analytics_db, kafka):
    prefix, database = f"e{uuid.uuid4().hex[:8]}.", f"bridge_errors_{uuid.uuid4().hex[:8]}"
    settings = settings_for(analytics_db, kafka, prefix)
    schema(analytics_db, database)
    port = free_port()  # ClickHouse will answer here only later
    config = BridgeConfig(
        clickhouse_url=f"http://127.0.0.1:{port}",
        bootstrap=kafka.bootstrap,
        database=database,
        topic_prefix=prefix,
        group_prefix=f"{prefix}group",
        flush_interval_ms=100,
        max_backoff_s=0.5,
        topics=("jobs",),
    )
    prepare_topics(config, create=True, partitions=1)
    values = [f"message {n}".encode() for n in range(20)]
    values[7] = b"poison"
    produce(kafka, prefix + "jobs", values)
    transient_before = RETRIES.labels("jobs", "transient")._value.get()
    unclassified_before = RETRIES.labels("jobs", "unclassified")._value.get()

    bridge = Bridge(config)
    bridge.start()
    try:
        deadline = time.monotonic() + 60
        while RETRIES.labels("jobs", "transient")._value.get() - transient_before < 2:
            assert time.monotonic() < deadline and not bridge.failures, bridge.failures
            time.sleep(0.1)
        assert query(analytics_db, f"SELECT count() AS n FROM {database}.landed")[0]["n"] in (0, "0")
        forwarder = TcpForwarder(port, analytics_db.port)  # ClickHouse is reachable again
        wait_until_consumed(kafka, settings.model_copy(update={"kafka_consumer_group_prefix": f"{prefix}group"}))
    finally:
        bridge.stop()
        if "forwarder" in locals():
            forwarder.close()
    assert not bridge.failures
    landed = query(analytics_db, f"SELECT payload, offset FROM {database}.landed ORDER BY offset")
    assert [row["payload"] for row in landed] == [v.decode() for v in values if v != b"poison"]
    [letter] = query(analytics_db, f"SELECT offset, raw_message, error FROM {database}.dead_letters FINAL")
    assert (int(letter["offset"]), letter["raw_message"]) == (7, "poison")
    assert "ILLEGAL_DIVISION" in letter["error"] or "Division by zero" in letter["error"]
    assert RETRIES.labels("jobs", "unclassified")._value.get() - unclassified_before >= 2
    execute(analytics_db, f"DROP DATABASE {database}")


def test_a_block_refused_for_its_partitions_is_split_until_it_fits(analytics_db, kafka):
    """A server whose profile keeps the limit on partitions an insert (code 252, like "too many
    parts") refuses a block spanning many months: the block's fault, so the bridge splits it."""
    prefix, database = f"p{uuid.uuid4().hex[:8]}.", f"bridge_partitions_{uuid.uuid4().hex[:8]}"
    settings = settings_for(analytics_db, kafka, prefix)
    execute(analytics_db, f"CREATE DATABASE {database}")
    execute(
        analytics_db,
        f"""CREATE TABLE {database}.jobs_messages (payload String, _topic String, _partition UInt64,
            _offset UInt64, _timestamp_ms Nullable(DateTime64(3, 'UTC'))) ENGINE = Null""",
    )
    execute(analytics_db, f"CREATE TABLE {database}.landed (offset UInt64) ENGINE = MergeTree ORDER BY offset")
    execute(analytics_db, f"CREATE TABLE {database}.dead_letters AS analytics.dead_letters")
    # The server's own refusal, as it words it, of a block of more than four rows.
    execute(
        analytics_db,
        f"""CREATE MATERIALIZED VIEW {database}.landed_mv TO {database}.landed AS
            SELECT _offset AS offset FROM (SELECT _offset, count() OVER () AS rows FROM {database}.jobs_messages)
            WHERE throwIf(rows > 4, 'Too many partitions for single INSERT block (more than 4)', toInt32(252)) = 0
            SETTINGS allow_custom_error_code_in_throwif = 1""",
    )
    config = BridgeConfig(
        clickhouse_url=analytics_db.url,
        bootstrap=kafka.bootstrap,
        database=database,
        topic_prefix=prefix,
        group_prefix=f"{prefix}group",
        flush_interval_ms=500,
        max_backoff_s=0.5,
        topics=("jobs",),
    )
    prepare_topics(config, create=True, partitions=1)
    produce(kafka, prefix + "jobs", [f"message {n}".encode() for n in range(20)])
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings.model_copy(update={"kafka_consumer_group_prefix": f"{prefix}group"}), 60)
    finally:
        bridge.stop()
    assert not bridge.failures
    landed = query(analytics_db, f"SELECT offset FROM {database}.landed ORDER BY offset")
    assert [int(row["offset"]) for row in landed] == list(range(20))
    assert query(analytics_db, f"SELECT count() AS n FROM {database}.dead_letters")[0]["n"] in (0, "0")
    execute(analytics_db, f"DROP DATABASE {database}")
