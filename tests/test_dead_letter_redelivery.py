"""A message Kafka delivers again after it was dead-lettered (here: the consumer group's offsets reset
to the earliest, as README's kafka-consumer-groups --reset-offsets does) is the same dead letter,
at its first arrival: the health check neither counts it twice nor takes it for a new one, and
`analytics dead-letters --since` does not list it again. Against a real broker and bridge."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import uuid

import dagster as dg
import pytest
from click.testing import CliRunner
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from analytics.cli import main
from embedded.bridge.config import config_from, prepare_topics
from orchestration.definitions import build_definitions
from tests.intake import execute, query
from tests.malformed import valid_event
from tests.test_bridge import MALFORMED, consume_with_a_bridge, produce
from tests.test_orchestration import evaluations, run_health_checks

pytestmark = [pytest.mark.kafka, pytest.mark.long_file(40)]  # seconds of a worker, measured

TOPICS = ("jobs", "analytics")
CHECK = "dead_letters:no_new_dead_letters"


def reset_to_the_earliest(kafka, settings, timeout: float = 60) -> None:
    """What `kafka-consumer-groups --reset-offsets --to-earliest --execute` does, for each topic's group;
    the broker refuses it until the stopped bridge's static members have left (their session timeout)."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    deadline = time.monotonic() + timeout
    for topic in TOPICS:
        group = f"{settings.kafka_consumer_group_prefix}_{topic}"
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(settings.kafka_topic_prefix + topic, 0, 0)])
        while True:
            try:
                answer = admin.alter_consumer_group_offsets([request])[group].result(timeout=10)
                errors = [position.error for position in answer.topic_partitions if position.error]
            except KafkaException as error:
                errors = [error]
            if not errors:
                break
            assert time.monotonic() < deadline, f"the offsets of {group} could not be reset: {errors}"
            time.sleep(0.5)


def dead_letters(server, prefix: str) -> list[dict]:
    return query(
        server,
        f"""SELECT topic, offset, toString(received_at) AS received_at
            FROM analytics.dead_letters FINAL WHERE startsWith(topic, '{prefix}')
            ORDER BY topic, offset, received_at""",
    )


def listed(env: dict, *args: str) -> str:
    result = CliRunner().invoke(main, ["dead-letters", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_redelivered_dead_letter_is_neither_counted_twice_nor_new(own_analytics_db, kafka):
    server, base = own_analytics_db
    prefix = f"r{uuid.uuid4().hex[:8]}."
    settings = base.model_copy(
        update={
            "kafka_bootstrap": kafka.bootstrap,
            "kafka_topic_prefix": prefix,
            "kafka_consumer_group_prefix": f"{prefix}group",
            "kafka_flush_interval_ms": 200,
            "kafka_session_timeout_ms": 3000,  # the stopped bridge's static members leave soon
        }
    )
    config = dataclasses.replace(config_from(settings), topics=TOPICS)
    prepare_topics(config, create=True, partitions=1)
    valid = {"jobs": [valid_event("jobs", n, f"{prefix}u") for n in range(3)]}
    produce(kafka, prefix, valid, {topic: MALFORMED[topic] for topic in TOPICS})
    consume_with_a_bridge(kafka, settings, config)
    first = dead_letters(server, prefix)
    assert len(first) == 4
    # Dead-lettered two hours ago, as far as the check and --since can tell.
    execute(
        server,
        f"""INSERT INTO analytics.dead_letters (topic, partition, offset, kafka_timestamp, raw_message, error,
                                                received_at)
            SELECT topic, partition, offset, kafka_timestamp, raw_message, error, received_at - INTERVAL 2 HOUR
            FROM analytics.dead_letters WHERE startsWith(topic, '{prefix}')""",
    )
    earlier = dead_letters(server, prefix)
    assert len(earlier) == 4 and earlier != first

    reset_to_the_earliest(kafka, settings)
    consume_with_a_bridge(kafka, settings, config)
    # Kafka delivered every message again and the bridge dead-lettered each again (rows a merge may
    # already have taken away): one dead letter each, at its first arrival.
    assert dead_letters(server, prefix) == earlier

    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        check = evaluations(run_health_checks(defs, instance))[CHECK]
        assert check.passed, check.description
        assert check.metadata["new_dead_letters"].value == 0

        env = {"ANALYTICS_CLICKHOUSE_HTTP_PORT": str(server.port)}
        an_hour_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
        assert "no dead letters" in listed(env, "--since", an_hour_ago)
        assert "4 dead letters" in listed(env)
        dry = CliRunner().invoke(main, ["dead-letters", "replay", "--dry-run", "--since", an_hour_ago], env=env)
        assert dry.exit_code == 0 and "dry run: 0 of 0 dead letters would be replayed" in dry.output, dry.output

        # One message that is new, and the old ones delivered once more: the check counts one.
        produce(kafka, prefix, {}, {"jobs": [json.dumps({"event_id": "new"}).encode()]})
        reset_to_the_earliest(kafka, settings)
        consume_with_a_bridge(kafka, settings, config)
        check = evaluations(run_health_checks(defs, instance))[CHECK]
        assert not check.passed
        assert check.metadata["new_dead_letters"].value == 1
        assert check.description.startswith("1 new dead letters")
    assert f"{prefix}jobs" in listed(env, "--since", an_hour_ago)
    assert "1 dead letters" in listed(env, "--since", an_hour_ago)
