"""Messages as producers other than the SDK write them (a Go or Java service's own Kafka client, a
kcat script), through a real broker and the bridge: what the contract takes counts once, and what it
refuses is one dead letter whose error names what the producer did."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer

from core.names import TOPICS
from embedded.bridge.config import config_from, prepare_topics
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


def test_several_events_in_one_message_are_named_as_such(analytics_db, kafka):
    """A producer that packs newline-delimited events into one message got the dead letter 'the
    message is not valid JSON', though each line is valid JSON: its team looked for a broken event."""
    prefix = f"p{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    config = config_from(settings)
    prepare_topics(config, create=True, partitions=1)
    user = prefix + "u"
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
