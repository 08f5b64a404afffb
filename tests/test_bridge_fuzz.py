"""Valid events (the scheduler's among them) damaged at random, through a real broker and the
bridge: every message ends as one dead letter or one row of raw history, each with its position,
and the partitions move on. The only messages that may end as neither are an event whose key
another message already brought (the first-seen gate drops it) and a log event older than the log
retention (its row expires at once).

The damage is seeded: a failure names the seed and the message, and the same damage comes again.
"""

from __future__ import annotations

import random
import uuid

import pytest
from confluent_kafka import Producer

from embedded.bridge.config import config_from, prepare_topics
from tests import datasets
from tests.intake import query
from tests.malformed import as_event, damaged, past_retention
from tests.test_bridge import consume_with_a_bridge, settings_for

pytestmark = pytest.mark.kafka

SEED = 20261206
RAW_TABLES = {
    "workflows": "workflow_events",
    "jobs": "job_events",
    "job_logs": "job_log_events",
    "analytics": "analytics_events",  # the scheduler's own events, keyed by EventKey
}
KEY_FIELD = {"analytics": "EventKey"}


def test_every_damaged_message_is_one_dead_letter_or_one_raw_row(analytics_db, kafka):
    rng = random.Random(SEED)
    prefix = f"z{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix, partitions=2)
    config = config_from(settings)
    prepare_topics(config, create=True, partitions=2)
    dataset = datasets.generate(seed=SEED % 1000, users=10)

    sent: dict[tuple[str, int, int], tuple[str, bytes]] = {}
    failures: list = []

    def remember(topic: str, payload: bytes):
        def delivered(error, message):
            if error is not None:
                failures.append(error)
            else:
                sent[(message.topic(), message.partition(), message.offset())] = (topic, payload)

        return delivered

    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for topic in RAW_TABLES:
        for event in dataset.messages[topic][:150]:
            payload = damaged(event, rng)
            key = rng.choice([b"k1", b"k2", b"", None])
            producer.produce(prefix + topic, payload, key=key, on_delivery=remember(topic, payload))
            producer.poll(0)
    assert producer.flush(60) == 0 and not failures, failures

    consume_with_a_bridge(kafka, settings, config)

    letters = query(
        analytics_db,
        f"SELECT topic, partition, offset FROM analytics.dead_letters WHERE startsWith(topic, '{prefix}')",
    )
    rows = [
        row
        for table in RAW_TABLES.values()
        for row in query(
            analytics_db,
            f"SELECT kafka_topic AS topic, kafka_partition AS partition, kafka_offset AS offset"
            f" FROM analytics.{table} WHERE startsWith(kafka_topic, '{prefix}')",
        )
    ]
    dead = [(row["topic"], int(row["partition"]), int(row["offset"])) for row in letters]
    stored = [(row["topic"], int(row["partition"]), int(row["offset"])) for row in rows]
    ended = set(dead) | set(stored)
    assert len(dead) + len(stored) == len(ended), "a message ended twice"
    assert ended <= set(sent), "an outcome for a message that was not sent"

    keys_stored: dict[str, set] = {topic: set() for topic in RAW_TABLES}
    for position in stored:
        topic, payload = sent[position]
        if (event := as_event(payload)) is not None:
            keys_stored[topic].add(event.get(KEY_FIELD.get(topic, "event_id")))
    lost = []
    for position, (topic, payload) in sent.items():
        if position in ended:
            continue
        event = as_event(payload) or {}
        key = event.get(KEY_FIELD.get(topic, "event_id"))
        if isinstance(key, str) and key and key in keys_stored[topic]:
            continue  # another message brought this key first
        if topic == "job_logs" and past_retention(event):
            continue
        lost.append((position, payload[:300]))
    assert not lost, f"seed {SEED}: messages that ended nowhere: {lost}"
    assert len(dead) > 50 and len(stored) > 50, (len(dead), len(stored))  # the damage leaves both kinds
