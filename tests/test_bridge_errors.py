"""How the bridge answers ClickHouse's errors, against a real broker and the real embedded ClickHouse:
a state that passes (ClickHouse unreachable) is waited out, and an error code nobody classified is
retried a few times, then taken as the data's fault: the message is dead-lettered, its neighbours
land, and the partition moves on."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Producer

from core.errors import DATA_ERRORS, TRANSIENT_ERRORS
from embedded.bridge.metrics import RETRIES
from embedded.bridge.runner import Bridge
from embedded.bridge.writer import Verdict, classify
from tests.embedded_server import free_port
from tests.events_support import TcpForwarder
from tests.intake import query
from tests.own_landing import own_landing
from tests.test_bridge import wait_until_consumed

pytestmark = pytest.mark.kafka


PASS_THROUGH = "SELECT payload, _offset AS offset FROM {database}.jobs_messages"
# librdkafka's own receive.message.max.bytes: the bridge allows more, and 100 MiB is past this.
LIBRDKAFKA_DEFAULT = 100_000_000


def test_the_error_classes_do_not_overlap_and_an_unknown_code_is_unclassified():
    assert not TRANSIENT_ERRORS & DATA_ERRORS
    assert classify(500, 241) is Verdict.TRANSIENT  # MEMORY_LIMIT_EXCEEDED
    assert classify(500, 33) is Verdict.DATA  # CANNOT_READ_ALL_DATA: a truncated message, never retried forever
    assert classify(503, 0) is Verdict.TRANSIENT  # a proxy's "not now"
    assert classify(500, 153) is Verdict.UNCLASSIFIED
    assert classify(500, 252, "Too many parts (3000). Merges are processing ...") is Verdict.TRANSIENT
    assert classify(500, 252, "Too many partitions for single INSERT block (more than 100)") is Verdict.DATA


def test_an_unreachable_clickhouse_is_waited_for_and_an_unclassified_error_is_dead_lettered(analytics_db, kafka):
    # A view that divides by zero (ILLEGAL_DIVISION, unclassified) on one message.
    landing = own_landing(
        analytics_db,
        kafka,
        "payload String, offset UInt64",
        """SELECT payload, _offset AS offset FROM {database}.jobs_messages
           WHERE intDiv(1, if(payload = 'poison', 0, 1)) = 1""",
    )
    port = free_port()  # ClickHouse will answer here only later
    config = landing.config(clickhouse_url=f"http://127.0.0.1:{port}", flush_interval_ms=100)
    values = [f"message {n}".encode() for n in range(20)]
    values[7] = b"poison"
    landing.produce(values)
    transient_before = RETRIES.labels("jobs", "transient")._value.get()
    unclassified_before = RETRIES.labels("jobs", "unclassified")._value.get()

    bridge = Bridge(config)
    bridge.start()
    try:
        deadline = time.monotonic() + 60
        while RETRIES.labels("jobs", "transient")._value.get() - transient_before < 2:
            assert time.monotonic() < deadline and not bridge.failures, bridge.failures
            time.sleep(0.1)
        assert query(analytics_db, f"SELECT count() AS n FROM {landing.database}.landed")[0]["n"] in (0, "0")
        forwarder = TcpForwarder(port, analytics_db.port)  # ClickHouse is reachable again
        wait_until_consumed(kafka, landing.settings)
    finally:
        bridge.stop()
        if "forwarder" in locals():
            forwarder.close()
    assert not bridge.failures
    landed = query(analytics_db, f"SELECT payload, offset FROM {landing.database}.landed ORDER BY offset")
    assert [row["payload"] for row in landed] == [v.decode() for v in values if v != b"poison"]
    [letter] = query(analytics_db, f"SELECT offset, raw_message, error FROM {landing.database}.dead_letters FINAL")
    assert (int(letter["offset"]), letter["raw_message"]) == (7, "poison")
    assert "ILLEGAL_DIVISION" in letter["error"] or "Division by zero" in letter["error"]
    assert RETRIES.labels("jobs", "unclassified")._value.get() - unclassified_before >= 2
    landing.drop()


def test_stopped_while_clickhouse_is_unreachable_it_says_how_many_messages_stay_uncommitted(
    analytics_db, kafka, caplog
):
    """It said "0 messages stay uncommitted" whatever it held: the batch had left the pending list
    when its insert began."""
    landing = own_landing(analytics_db, kafka, "payload String", "SELECT payload FROM {database}.jobs_messages")
    config = landing.config(clickhouse_url=f"http://127.0.0.1:{free_port()}", flush_interval_ms=100)
    landing.produce([f"message {n}".encode() for n in range(12)])
    transient_before = RETRIES.labels("jobs", "transient")._value.get()
    bridge = Bridge(config)
    bridge.start()
    try:
        deadline = time.monotonic() + 60
        while RETRIES.labels("jobs", "transient")._value.get() == transient_before:
            assert time.monotonic() < deadline and not bridge.failures, bridge.failures
            time.sleep(0.1)
    finally:
        with caplog.at_level(logging.WARNING):
            bridge.stop()
    assert not bridge.failures
    assert "bridge-jobs-0: stopped while ClickHouse was unavailable; 12 messages stay uncommitted" in caplog.text
    landing.drop()


def test_a_block_refused_for_its_partitions_is_split_until_it_fits(analytics_db, kafka):
    """A server whose profile keeps the limit on partitions an insert (code 252, like "too many
    parts") refuses a block spanning many months: the block's fault, so the bridge splits it."""
    # The server's own refusal, as it words it, of a block of more than four rows.
    landing = own_landing(
        analytics_db,
        kafka,
        "offset UInt64",
        """SELECT _offset AS offset FROM (SELECT _offset, count() OVER () AS rows FROM {database}.jobs_messages)
           WHERE throwIf(rows > 4, 'Too many partitions for single INSERT block (more than 4)', toInt32(252)) = 0
           SETTINGS allow_custom_error_code_in_throwif = 1""",
    )
    config = landing.config()
    landing.produce([f"message {n}".encode() for n in range(20)])
    landing.consume(config)
    landed = query(analytics_db, f"SELECT offset FROM {landing.database}.landed ORDER BY offset")
    assert [int(row["offset"]) for row in landed] == list(range(20))
    assert query(analytics_db, f"SELECT count() AS n FROM {landing.database}.dead_letters")[0]["n"] in (0, "0")
    landing.drop()


def test_a_message_the_consumer_cannot_decompress_is_dead_lettered_and_its_partition_goes_on(analytics_db, kafka):
    """100 MiB of zstd compress into a few KB, under the broker's limit, and past what librdkafka
    decompresses (receive.message.max.bytes): fetched again and again, it held its partition for ever."""
    landing = own_landing(analytics_db, kafka, "payload String, offset UInt64", PASS_THROUGH)
    config = landing.config(flush_interval_ms=100, max_batch_bytes=LIBRDKAFKA_DEFAULT)
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "compression.type": "zstd", "message.max.bytes": 200_000_000}
    )
    for value in (b"message 0", b"a" * (100 << 20), b"message 2", b"message 3"):
        producer.produce(landing.prefix + "jobs", value)
        producer.flush(60)  # a batch each: the large one alone
    landing.consume(config)
    landed = query(analytics_db, f"SELECT payload, offset FROM {landing.database}.landed ORDER BY offset")
    assert [(row["payload"], int(row["offset"])) for row in landed] == [
        ("message 0", 0),
        ("message 2", 2),
        ("message 3", 3),
    ]
    [letter] = query(analytics_db, f"SELECT offset, raw_message, error FROM {landing.database}.dead_letters FINAL")
    assert (int(letter["offset"]), letter["raw_message"]) == (1, "")
    assert letter["error"].startswith("the bridge could not decode this message (Decompression")
    landing.drop()


def test_a_batch_of_several_messages_the_consumer_cannot_decompress_is_passed_whole(analytics_db, kafka, caplog):
    """librdkafka reports a batch's error at its first offset: once past that one, the fetch from
    the next offset brought the same batch back, and its partition was held for ever."""
    landing = own_landing(analytics_db, kafka, "payload String, offset UInt64", PASS_THROUGH)
    config = landing.config(flush_interval_ms=100, max_batch_bytes=LIBRDKAFKA_DEFAULT)
    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "compression.type": "zstd",
            "message.max.bytes": 200_000_000,
            "linger.ms": 60_000,  # the first five in one record batch, sent by the flush
            "batch.size": 200_000_000,
        }
    )
    for value in (b"message 0", b"message 1", b"a" * (100 << 20), b"message 3", b"message 4"):
        producer.produce(landing.prefix + "jobs", value)
    producer.flush(60)
    for value in (b"message 5", b"message 6"):
        producer.produce(landing.prefix + "jobs", value)
        producer.flush(60)
    with caplog.at_level(logging.WARNING):
        landing.consume(config)
    landed = query(analytics_db, f"SELECT payload, offset FROM {landing.database}.landed ORDER BY offset")
    assert [(row["payload"], int(row["offset"])) for row in landed] == [("message 5", 5), ("message 6", 6)]
    letters = query(analytics_db, f"SELECT offset, raw_message FROM {landing.database}.dead_letters FINAL")
    assert sorted((int(row["offset"]), row["raw_message"]) for row in letters) == [(n, "") for n in range(5)]
    undecodable = [record for record in caplog.records if "Decompression" in record.getMessage()]
    assert len(undecodable) == 1, [record.getMessage() for record in undecodable]  # once a minute, not a poll
    landing.drop()
