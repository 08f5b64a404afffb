"""What the bridge commits and reports as lag, against a real broker: once everything is consumed
the lag is 0, also on a topic written in transactions (each ends with a commit marker that takes
an offset and is no message), and every lag row says when it was measured."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from embedded.bridge.config import config_from, prepare_topics
from embedded.bridge.runner import Bridge
from tests.intake import query
from tests.malformed import valid_event
from tests.test_bridge import settings_for, wait_until_consumed

pytestmark = pytest.mark.kafka


def test_a_topic_written_in_transactions_is_consumed_to_a_lag_of_zero(analytics_db, kafka):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    user = f"tx-{uuid.uuid4().hex[:8]}"
    settings = settings_for(analytics_db, kafka, prefix, partitions=2)
    config = dataclasses.replace(config_from(settings), topics=("workflows",), lag_interval_s=0.5)
    prepare_topics(config, create=True, partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": f"{prefix}producer"})
    producer.init_transactions(30)
    for transaction in range(4):
        producer.begin_transaction()
        for n in range(5):
            number = transaction * 5 + n
            event = json.dumps(valid_event("workflows", number, user)).encode()
            producer.produce(prefix + "workflows", event, key=f"w{number}".encode())
        if transaction == 2:
            producer.abort_transaction(30)  # read_committed never returns these: they count nowhere
        else:
            producer.commit_transaction(30)

    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings.model_copy(update={"kafka_topic_partitions": 2}), timeout=60)
        deadline = time.monotonic() + 30
        while True:  # the bridge's own report catches up with its commits
            rows = query(
                analytics_db,
                f"""SELECT partition, lag, measured_at FROM analytics.kafka_consumer_lag FINAL
                    WHERE topic = '{prefix}workflows' ORDER BY partition""",
            )
            if len(rows) == 2 and all(int(row["lag"]) == 0 for row in rows):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.3)
    finally:
        bridge.stop()
    assert not bridge.failures
    now = datetime.now(UTC).replace(tzinfo=None)
    for row in rows:
        assert now - timedelta(minutes=5) < datetime.fromisoformat(row["measured_at"]) <= now, row
    [totals] = query(analytics_db, f"SELECT total_workflows FROM analytics.user_totals WHERE user_id = '{user}'")
    assert int(totals["total_workflows"]) == 15
