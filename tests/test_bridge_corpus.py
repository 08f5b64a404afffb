"""Malformed messages interleaved with valid events on all five topics and several partitions, through
a real broker and the bridge: every malformed message is one dead letter with its position and
bytes, every valid event counts exactly once, and the partitions move on."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer

from core.names import TOPICS
from embedded.bridge.config import config_from, prepare_topics
from tests import datasets
from tests.checks import assert_matches
from tests.intake import query
from tests.malformed import shapes
from tests.test_bridge import consume_with_a_bridge, key_of, settings_for

pytestmark = pytest.mark.kafka


def produce_interleaved(kafka, prefix: str, messages: dict[str, list[dict]]) -> dict[tuple, tuple[str, bytes]]:
    """Valid events keyed by workflow with the malformed shapes spread between them (keyed so they
    land on every partition); returns {(kafka topic, partition, offset): (shape name, bytes)}."""
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "linger.ms": 5, "message.max.bytes": 8 << 20}
    )
    malformed: dict[tuple, tuple[str, bytes]] = {}
    failures: list = []

    def remember(name: str, payload: bytes):
        def delivered(error, message):
            if error is not None:
                failures.append((name, error))
            else:
                malformed[(message.topic(), message.partition(), message.offset())] = (name, payload)

        return delivered

    for topic in TOPICS:
        valid, bad = list(messages.get(topic, [])), shapes(topic)
        step = max(1, len(valid) // (len(bad) + 1))
        for n, message in enumerate(valid):
            producer.produce(prefix + topic, json.dumps(message).encode(), key=key_of(topic, message))
            if n % step == step - 1 and bad:
                shape = bad.pop(0)
                producer.produce(
                    prefix + topic,
                    shape.payload,
                    key=f"bad-{n}".encode(),
                    on_delivery=remember(shape.name, shape.payload),
                )
            producer.poll(0)
        for n, shape in enumerate(bad):
            producer.produce(
                prefix + topic, shape.payload, key=f"tail-{n}".encode(), on_delivery=remember(shape.name, shape.payload)
            )
    assert producer.flush(120) == 0
    assert not failures, failures
    return malformed


def test_every_malformed_message_is_one_dead_letter_and_every_valid_event_counts_once(analytics_db, kafka):
    prefix = f"c{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix, partitions=3)
    config = config_from(settings)
    prepare_topics(config, create=True, partitions=3)
    dataset = datasets.generate(seed=36, users=5)
    malformed = produce_interleaved(kafka, prefix, dataset.messages)
    assert len(malformed) >= 5 * 30 and len({key[1] for key in malformed}) == 3

    consume_with_a_bridge(kafka, settings, config)

    assert_matches(analytics_db, dataset)  # the valid neighbours all counted, exactly once
    letters = query(
        analytics_db,
        f"""SELECT topic, partition, offset, hex(raw_message) AS raw, error FROM analytics.dead_letters FINAL
            WHERE startsWith(topic, '{prefix}')""",
    )
    stored = {(row["topic"], int(row["partition"]), int(row["offset"])): row for row in letters}
    missing = sorted(name for key, (name, _) in malformed.items() if key not in stored)
    assert not missing, f"not dead-lettered: {missing}"
    assert set(stored) == set(malformed), "dead letters for messages that were valid"
    for key, (name, payload) in malformed.items():
        assert bytes.fromhex(stored[key]["raw"]) == payload, f"{key} ({name}): bytes not kept"
        assert stored[key]["error"], name
