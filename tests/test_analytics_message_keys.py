"""The scheduler's keyless events (`EventKey` empty) count once per Kafka message: its position and
the time Kafka stamped on it. A redelivery counts once, also after the message was replayed from
dead letters (which keep the timestamp); a topic deleted and created again starts its offsets at 0
again, and its messages count as the new messages they are. A database whose view knew them by
position alone (an earlier version) is brought to the new key by `analytics migrate`."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlencode

import pytest

from embedded.bridge.framing import row_binary
from embedded.bridge.writer import LandingWriter
from operations.dead_letters import replay
from operations.migrate import migrate
from tests.http_support import HTTP
from tests.intake import execute, query
from tests.malformed import valid_event
from tests.test_contract_verdicts import KafkaRecord

pytestmark = pytest.mark.long_file(20)  # seconds of a worker, measured: run first (tests/scheduling.py)

VIEW = "analytics_events_from_analytics_checked_mv"
EARLIER_KEY = "sipHash128('analytics_position', ifNull(_topic, ''), ifNull(_partition, 0), assumeNotNull(_offset))"
LOGGED_AT = KafkaRecord.milliseconds  # Kafka's timestamp of the first log's messages, in ms
RECREATED_AT = LOGGED_AT + 86_400_000  # a day later, the topic's second log


def keyless(user: str, offsets: range, milliseconds: int) -> list[KafkaRecord]:
    """Keyless LOGS events (2 lines each) at these offsets of partition 0, stamped by Kafka so."""
    return [
        KafkaRecord(json.dumps({**valid_event("analytics", n, user), "EventKey": ""}).encode(), n, milliseconds)
        for n in offsets
    ]


def consume(server, kafka_topic: str, user: str, offsets: range, milliseconds: int) -> None:
    """The keyless events at these offsets, inserted as the bridge inserts them."""
    url = f"{server.url}/?{urlencode({'query': 'INSERT INTO analytics.analytics_messages FORMAT RowBinary'})}"
    response = HTTP.request("POST", url, body=row_binary(kafka_topic.encode(), keyless(user, offsets, milliseconds)))
    assert response.status == 200, response.data


def joblogs(server, user: str) -> int:
    rows = query(server, f"SELECT total_joblogs FROM analytics.user_totals WHERE user_id = '{user}'")
    return int(rows[0]["total_joblogs"]) if rows else 0


def test_a_recreated_topics_keyless_events_count_and_a_redelivery_does_not(analytics_db):
    user, kafka_topic = f"mk-{uuid.uuid4().hex[:8]}", f"mk{uuid.uuid4().hex[:8]}.analytics"
    consume(analytics_db, kafka_topic, user, range(5), LOGGED_AT)
    consume(analytics_db, kafka_topic, user, range(2, 5), LOGGED_AT)  # delivered again
    assert joblogs(analytics_db, user) == 10
    # The topic deleted and created again: its offsets start at 0 again, under later timestamps.
    consume(analytics_db, kafka_topic, user, range(3), RECREATED_AT)
    assert joblogs(analytics_db, user) == 16
    consume(analytics_db, kafka_topic, user, range(3), RECREATED_AT)  # and delivered again
    assert joblogs(analytics_db, user) == 16


@pytest.fixture(params=["UTC", "America/New_York"])
def local_zone(request, monkeypatch):
    """The time zone of the machine the replay runs on (a laptop's need not be UTC)."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def test_a_keyless_event_replayed_from_dead_letters_then_read_again_from_kafka_counts_once(analytics_db, local_zone):
    user, kafka_topic = f"mk-{uuid.uuid4().hex[:8]}", f"mk{uuid.uuid4().hex[:8]}.analytics"
    # ClickHouse refused the insert itself (not the message's fault): the bridge dead-letters it.
    writer = LandingWriter(analytics_db.url, "analytics", "analytics", kafka_topic, "default", "")
    for message in keyless(user, range(3), LOGGED_AT):
        writer.dead_letter(message, "ClickHouse refused it: Code: 1002. a fault since fixed")
    writer.close()
    result = replay(analytics_db.settings(), topic=kafka_topic)
    assert (result.replayed, result.landed) == (3, 3)
    assert joblogs(analytics_db, user) == 6
    # The consumer group reset to the start: Kafka delivers the same messages again.
    consume(analytics_db, kafka_topic, user, range(3), LOGGED_AT)
    assert joblogs(analytics_db, user) == 6


def test_keys_by_position_alone_are_upgraded_and_nothing_counts_twice(own_analytics_db):
    server, settings = own_analytics_db
    user, kafka_topic = "mk-upgrade", "mk-upgrade.analytics"
    [row] = query(server, f"SELECT create_table_query AS q FROM system.tables WHERE name = '{VIEW}'")
    current = row["q"][row["q"].index("sipHash128('analytics_kafka_message'") :]
    current = current[: current.index("), -1))") + len("), -1))")]
    execute(server, f"DROP VIEW analytics.{VIEW}")
    execute(server, row["q"].replace(current, EARLIER_KEY))
    # nor did dead letters keep it (nor their first arrival): the views write to the earlier table by its name
    execute(
        server,
        """CREATE TABLE analytics.dead_letters_earlier (topic LowCardinality(String), partition Nullable(UInt64),
               offset Nullable(UInt64), raw_message String, error String, received_at DateTime64(3, 'UTC'))
           ENGINE = ReplacingMergeTree ORDER BY (topic, partition, offset) SETTINGS allow_nullable_key = 1""",
    )
    execute(server, "EXCHANGE TABLES analytics.dead_letters AND analytics.dead_letters_earlier")
    execute(server, "DROP TABLE analytics.dead_letters_earlier SYNC")
    consume(server, kafka_topic, user, range(4), LOGGED_AT)
    assert joblogs(server, user) == 8

    upgraded = migrate(settings, capture=True)
    assert upgraded.returncode == 0, upgraded.stdout[-3000:]
    # Stored before the upgrade, delivered again after it: counted once.
    consume(server, kafka_topic, user, range(6), LOGGED_AT)
    assert joblogs(server, user) == 12
    assert "keyless events by Kafka position and timestamp into seen_keys" in upgraded.stdout
    assert "added kafka_timestamp to" in upgraded.stdout
    columns = query(server, "SELECT name FROM system.columns WHERE table = 'dead_letters' ORDER BY position")
    assert [column["name"] for column in columns][:4] == ["topic", "partition", "offset", "kafka_timestamp"]

    again = migrate(settings, capture=True)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "keyless events by Kafka position" not in again.stdout
    assert "added kafka_timestamp" not in again.stdout
    assert joblogs(server, user) == 12
