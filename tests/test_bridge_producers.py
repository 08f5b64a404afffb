"""Messages as producers other than the SDK write them (a Go or Java service's own Kafka client, a
kcat script), through a real broker and the bridge: what the contract takes counts once, and what it
refuses is one dead letter whose error names what the producer did."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import pytest
from confluent_kafka import Producer

from core.names import TOPICS
from embedded.bridge.config import config_from, prepare_topics
from embedded.bridge.runner import Bridge
from tests.intake import query
from tests.malformed import valid_event
from tests.test_bridge import consume_with_a_bridge, settings_for

pytestmark = pytest.mark.kafka


def dead_letters(server, prefix: str) -> dict[tuple[str, int], str]:
    """{(topic without the prefix, offset): error} of the dead letters of the prefix's topics."""
    rows = query(
        server,
        f"SELECT topic, offset, error FROM analytics.dead_letters FINAL WHERE startsWith(topic, '{prefix}')",
    )
    return {(row["topic"][len(prefix) :], int(row["offset"])): row["error"] for row in rows}


def topics_of_a_test(analytics_db, kafka, letter: str, partitions: int = 1):
    """Topics of their own for one test (one partition unless told), with the bridge's settings and
    config for them; returns (prefix, settings, config, the user its events name)."""
    prefix = f"{letter}{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix, partitions=partitions)
    config = config_from(settings)
    prepare_topics(config, create=True, partitions=partitions)
    return prefix, settings, config, prefix + "u"


def test_several_events_in_one_message_are_named_as_such(analytics_db, kafka):
    """A producer that packs newline-delimited events into one message got the dead letter 'the
    message is not valid JSON', though each line is valid JSON: its team looked for a broken event."""
    prefix, settings, config, user = topics_of_a_test(analytics_db, kafka, "p")
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for topic in TOPICS:
        first, second = (json.dumps(valid_event(topic, n, user)).encode() for n in (1, 2))
        producer.produce(prefix + topic, first + b"\n" + second)  # offset 0
        producer.produce(prefix + topic, first + b"\r\n" + second + b"\r\n")  # offset 1: written on Windows
        producer.produce(prefix + topic, first + b"\n" + b"not json")  # offset 2
        producer.produce(prefix + topic, b"{\n" + first[1:-1])  # offset 3: a pretty-printed event cut short
    assert producer.flush(30) == 0

    consume_with_a_bridge(kafka, settings, config)

    letters = dead_letters(analytics_db, prefix)
    assert set(letters) == {(topic, offset) for topic in TOPICS for offset in range(4)}
    for topic in TOPICS:
        for offset in range(3):
            assert letters[(topic, offset)] == (
                "the message is not one JSON value: its first line is a whole one and more follows"
                " (a message carries one event; events are not read line by line)"
            ), (topic, offset)
        assert letters[(topic, 3)] == "the message is not valid JSON", topic


SCHEMA_REGISTRY_ERROR = (
    "the message begins with byte 0 and is not JSON: Confluent Schema Registry's serializers frame a message so"
    " (byte 0, a 4-byte schema id, then the data); a message must be the event's JSON alone"
)


def test_a_schema_registry_framed_event_is_named_as_such(analytics_db, kafka):
    """A Java service with Confluent's KafkaJsonSchemaSerializer (or Avro's) writes byte 0 and a 4-byte
    schema id before the event: the dead letter said 'not valid JSON', or 'not valid UTF-8' when a
    byte of the id is past 127, and nothing pointed at the serializer."""
    prefix, settings, config, user = topics_of_a_test(analytics_db, kafka, "r")
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for topic in TOPICS:
        event = json.dumps(valid_event(topic, 1, user)).encode()
        producer.produce(prefix + topic, b"\x00" + (7).to_bytes(4, "big") + event)  # offset 0
        producer.produce(prefix + topic, b"\x00" + (200).to_bytes(4, "big") + event)  # offset 1: not UTF-8
        producer.produce(prefix + topic, b"\x00")  # offset 2: a NUL byte, no header
    assert producer.flush(30) == 0

    consume_with_a_bridge(kafka, settings, config)

    letters = dead_letters(analytics_db, prefix)
    assert set(letters) == {(topic, offset) for topic in TOPICS for offset in range(3)}
    for topic in TOPICS:
        assert letters[(topic, 0)] == letters[(topic, 1)] == SCHEMA_REGISTRY_ERROR, topic
        assert letters[(topic, 2)] == "the message is not valid JSON", topic


def test_a_compressed_batch_of_large_events_counts_every_event(analytics_db, kafka):
    """A producer batches before it compresses, and the broker's limit (8 MiB) is on the batch as
    sent: a Java producer's batch.size counts compressed bytes, so a batch of log events each under
    the limit decompresses to more than librdkafka's default receive.message.max.bytes (100 MB).
    Fourteen events of 7 MiB, one zstd batch of a few KB: the bridge dead-lettered all fourteen
    without their bytes, which no replay can bring back."""
    prefix, settings, config, user = topics_of_a_test(analytics_db, kafka, "s")
    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "compression.type": "zstd",
            "message.max.bytes": 200_000_000,  # librdkafka's producer bounds its batches uncompressed
            "batch.size": 150_000_000,
            "linger.ms": 60_000,  # one batch, sent by the flush
        }
    )
    offsets: list[int] = []
    for n in range(14):
        event = {**valid_event("job_logs", n, user), "message": "x" * (7 << 20)}
        producer.produce(
            prefix + "job_logs", json.dumps(event).encode(), on_delivery=lambda e, m: offsets.append(m.offset())
        )
    assert producer.flush(60) == 0
    assert sorted(offsets) == list(range(14))

    consume_with_a_bridge(kafka, settings, config)

    assert dead_letters(analytics_db, prefix) == {}
    [row] = query(
        analytics_db,
        f"""SELECT count() AS n, min(length(message)) AS shortest
            FROM analytics.job_log_events FINAL WHERE user_id = '{user}'""",
    )
    assert (int(row["n"]), int(row["shortest"])) == (14, 7 << 20)


# event_time as other clients write it: Go's time.Time (RFC 3339 with nanoseconds, trailing zeros
# dropped, no fraction on a whole second, the zone's offset) and Java's Instant (3, 6 or 9 digits).
CLIENT_TIMES = {
    "2026-11-20T10:00:00Z": "2026-11-20 10:00:00.000",
    "2026-11-20T10:00:00.123456789Z": "2026-11-20 10:00:00.123",
    "2026-11-20T11:00:00.5+01:00": "2026-11-20 10:00:00.500",
    "2026-11-20T04:30:00.999999-05:30": "2026-11-20 10:00:00.999",
    "2026-11-20T23:59:59.9999999Z": "2026-11-20 23:59:59.999",  # truncated, so the day stays
}


def test_what_other_clients_send_counts_once(analytics_db, kafka):
    """Every codec, no key or any key, headers, a UTF-8 BOM, a trailing line break, pretty-printed
    JSON, client time formats, an event of nearly 8 MiB, and a transaction aborted before one that
    commits: each valid event counts once, nothing of the aborted transaction counts, and what the
    contract refuses (Java's OffsetDateTime.toString() drops zero seconds; Go's zero time.Time for an
    unset time) is a dead letter naming the field."""
    prefix, settings, config, user = topics_of_a_test(analytics_db, kafka, "o", partitions=2)
    workflows, expected = prefix + "workflows", {}

    def event(name: str, when: str = "2026-11-20T10:00:00.000Z", **extra) -> bytes:
        expected[name] = extra.pop("expect", "2026-11-20 10:00:00.000")
        body = {**valid_event("workflows", 0, user), "event_id": name, "workflow_id": name, "event_time": when}
        return json.dumps({**body, **extra}).encode()

    base = {"bootstrap.servers": kafka.bootstrap, "message.max.bytes": 8 << 20}
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        producer = Producer({**base, "compression.type": codec, "linger.ms": 50, "partitioner": "murmur2_random"})
        for n in range(6):
            key = (None, b"", b"\x00\xff", f"k{n}".encode())[n % 4]
            headers = [("content-type", b"application/json"), ("trace", None)] if n % 2 else None
            producer.produce(workflows, event(f"{codec}-{n}"), key=key, headers=headers)
        assert producer.flush(30) == 0
    transactional = Producer({**base, "transactional.id": prefix + "tx"})
    transactional.init_transactions(30)
    transactional.begin_transaction()
    for n in range(3):
        transactional.produce(workflows, json.dumps({**valid_event("workflows", 0, user), "event_id": f"aborted-{n}"}))
    transactional.flush(30)
    transactional.abort_transaction(30)
    transactional.begin_transaction()
    for n in range(3):
        transactional.produce(workflows, event(f"committed-{n}"))
    transactional.commit_transaction(30)
    producer = Producer(base)
    producer.produce(workflows, b"\xef\xbb\xbf" + event("bom"))
    producer.produce(workflows, event("crlf") + b"\r\n")
    producer.produce(workflows, json.dumps(json.loads(event("pretty")), indent=2).encode())
    for n, (when, stored) in enumerate(CLIENT_TIMES.items()):
        producer.produce(workflows, event(f"time-{n}", when, expect=stored))
    producer.produce(workflows, event("large", padding="x" * ((8 << 20) - 1000)))
    refused = {
        "java-no-seconds": event("java-no-seconds", "2026-11-20T10:00Z"),
        "go-zero-time": json.dumps(
            {**valid_event("jobs", 0, user), "completed_at": "0001-01-01T00:00:00Z", "status": "RUNNING"}
            | {"event_name": "started", "started_at": "2026-11-20T10:00:00Z"}
        ).encode(),
    }
    for name in refused:
        expected.pop(name, None)
    producer.produce(workflows, refused["java-no-seconds"])
    producer.produce(prefix + "jobs", refused["go-zero-time"])
    assert producer.flush(30) == 0

    consume_with_a_bridge(kafka, settings, config)

    rows = query(
        analytics_db,
        f"""SELECT event_id, count() AS n, any(toString(event_time)) AS event_time
            FROM analytics.workflow_events FINAL WHERE user_id = '{user}' GROUP BY event_id""",
    )
    assert {row["event_id"]: (int(row["n"]), row["event_time"]) for row in rows} == {
        name: (1, when) for name, when in expected.items()
    }
    [totals] = query(analytics_db, f"SELECT total_workflows FROM analytics.user_totals WHERE user_id = '{user}'")
    assert int(totals["total_workflows"]) == len(expected)
    letters = sorted(dead_letters(analytics_db, prefix).items())
    assert [(topic, error.split(":")[0]) for (topic, _), error in letters] == [
        ("jobs", "completed_at_is_iso8601"),
        ("workflows", "event_time_is_iso8601"),
    ]


def test_a_transaction_left_open_shows_as_lag(analytics_db, kafka):
    """A producer that dies inside a transaction holds its partition for a read_committed consumer
    until the broker aborts it (transaction.timeout.ms: a minute by default, up to 15). Its lag was
    measured against the last stable offset, which stops at the open transaction: 0, while the
    events behind it waited unread and uncounted."""
    prefix, settings, config, user = topics_of_a_test(analytics_db, kafka, "t")
    config = dataclasses.replace(config, lag_interval_s=0.5)
    transactional = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": prefix + "tx"})
    transactional.init_transactions(30)
    transactional.begin_transaction()
    for n in range(3):
        transactional.produce(prefix + "jobs", json.dumps(valid_event("jobs", n, user)).encode())
    transactional.flush(30)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for n in range(3, 6):
        producer.produce(prefix + "jobs", json.dumps(valid_event("jobs", n, user)).encode())
    assert producer.flush(30) == 0

    def measured() -> list[dict]:
        return query(
            analytics_db,
            f"""SELECT high_watermark, lag FROM analytics.kafka_consumer_lag
                WHERE topic = '{prefix}jobs' ORDER BY measured_at DESC LIMIT 1""",
        )

    bridge = Bridge(config)
    bridge.start()
    try:
        deadline = time.monotonic() + 30
        while not (rows := measured()) or int(rows[0]["lag"]) < 6:
            assert time.monotonic() < deadline, f"the open transaction's partition shows as {rows}"
            time.sleep(0.3)
        assert int(rows[0]["high_watermark"]) == 6
        transactional.commit_transaction(30)
        deadline = time.monotonic() + 60
        while int((rows := measured())[0]["lag"]) != 0:  # past the commit marker too
            assert time.monotonic() < deadline and not bridge.failures, rows
            time.sleep(0.3)
    finally:
        bridge.stop()
    assert not bridge.failures
    [row] = query(analytics_db, f"SELECT count() AS n FROM analytics.job_events FINAL WHERE user_id = '{user}'")
    assert int(row["n"]) == 6
