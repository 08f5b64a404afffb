"""The embedded Kafka bridge against a real broker: exact numbers, dead letters, crashes, restarts."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from core.names import TOPICS
from core.settings.composed import Settings
from embedded.bridge.config import config_from, prepare_topics
from embedded.bridge.runner import Bridge
from embedded.kafka.topics import MissingTopics
from tests import datasets
from tests.checks import assert_matches
from tests.intake import query

# long_file: seconds of a worker, measured: run first (tests/scheduling.py)
pytestmark = [pytest.mark.kafka, pytest.mark.long_file(35)]
ROOT = Path(__file__).resolve().parent.parent


def settings_for(analytics_db, kafka, prefix: str, partitions: int = 1) -> Settings:
    return analytics_db.settings(
        kafka_bootstrap=kafka.bootstrap,
        kafka_topic_prefix=prefix,
        kafka_consumer_group_prefix=f"{prefix}group",
        kafka_topic_partitions=partitions,
        kafka_flush_interval_ms=200,
        kafka_max_block_size=5000,
    )


def key_of(topic: str, message: dict) -> bytes | None:
    key = message.get("workflow_id") or message.get("WorkflowID")
    return key.encode() if isinstance(key, str) else None


def produce(kafka, prefix: str, messages: dict[str, list], extra: dict[str, list[bytes]] | None = None) -> int:
    """Produce every message keyed by workflow (so a workflow's events keep their order)."""
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    produced = 0
    for topic, batch in messages.items():
        for message in batch:
            producer.produce(prefix + topic, json.dumps(message).encode(), key=key_of(topic, message))
            produced += 1
            if produced % 5000 == 0:
                producer.flush(30)
    for topic, raw in (extra or {}).items():
        for value in raw:
            producer.produce(prefix + topic, value)
            produced += 1
    assert producer.flush(60) == 0
    return produced


def group_lag(kafka, settings: Settings) -> int:
    """Messages not yet committed by the bridge's consumer groups, over every topic."""
    total = 0
    for topic in TOPICS:
        consumer = Consumer(
            {"bootstrap.servers": kafka.bootstrap, "group.id": f"{settings.kafka_consumer_group_prefix}_{topic}"}
        )
        try:
            name = settings.kafka_topic_prefix + topic
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            committed = consumer.committed([TopicPartition(name, p) for p in partitions], timeout=10)
            for tp in committed:
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                total += high - (tp.offset if tp.offset >= 0 else low)
        finally:
            consumer.close()
    return total


def committed_offsets(kafka, settings: Settings, topic: str) -> list[TopicPartition]:
    """What the bridge's consumer group of ``topic`` has committed, a partition each."""
    consumer = Consumer(
        {"bootstrap.servers": kafka.bootstrap, "group.id": f"{settings.kafka_consumer_group_prefix}_{topic}"}
    )
    try:
        name = settings.kafka_topic_prefix + topic
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        return consumer.committed([TopicPartition(name, p) for p in partitions], timeout=10)
    finally:
        consumer.close()


def measured_lag(kafka, settings: Settings, timeout: float = 60) -> int:
    """group_lag, asked again while the broker answers e.g. NOT_COORDINATOR (a group's coordinator loading)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return group_lag(kafka, settings)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def wait_until_consumed(kafka, settings: Settings, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (lag := measured_lag(kafka, settings)) > 0:
        assert time.monotonic() < deadline, f"{lag} messages still not consumed after {timeout}s"
        time.sleep(0.3)


def consume_with_a_bridge(kafka, settings: Settings, config, timeout: float = 90) -> None:
    """Run one bridge until its groups' lag is 0 (the timeout an upper bound on a shared machine, not
    a speed claim), stop it and check that it met no failure."""
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings, timeout=timeout)
    finally:
        bridge.stop()
    assert not bridge.failures


MALFORMED = {
    "jobs": [b"not json at all", b'{"event_id": "only-an-id"}', b"[1, 2, 3]"],
    "workflows": [
        b'{"event_id":"w-bad-time","event_time":"yesterday","event_type":"workflow","event_name":"created",'
        b'"user_id":"u","workflow_id":"w"}'
    ],
    "telemetry": [b'{"event_id": 5, "event_time": "2026-11-20T10:00:00Z", "event_type": "m", "event_name": "n"}'],
    "analytics": [b'{"EventKey":"k-bad","UserID":"u","WorkflowID":"w","EventType":"MYSTERY","Data":{}}'],
}


def test_bridge_counts_exactly_and_dead_letters_every_malformed_message(analytics_db, kafka):
    prefix = f"b{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    dataset = datasets.generate(seed=31, users=4)
    config = config_from(settings)
    prepare_topics(config, create=True, partitions=1)
    produce(kafka, prefix, dataset.messages, MALFORMED)
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings)
    finally:
        bridge.stop()
    assert not bridge.failures
    assert_matches(analytics_db, dataset)
    # Each commit carries the leader epoch of the message before it (KIP-320), so a consumer that
    # starts from it can tell a log cut by an unclean leader election.
    for topic in TOPICS:
        for position in committed_offsets(kafka, settings, topic):
            assert position.offset > 0 and position.leader_epoch is not None and position.leader_epoch >= 0, position
    letters = query(
        analytics_db,
        f"SELECT topic, raw_message, error FROM analytics.dead_letters FINAL WHERE startsWith(topic, '{prefix}')",
    )
    by_topic = {}
    for letter in letters:
        by_topic.setdefault(letter["topic"][len(prefix) :], []).append(letter)
    for topic, raw in MALFORMED.items():
        assert sorted(letter["raw_message"] for letter in by_topic[topic]) == sorted(v.decode() for v in raw)
        assert all(letter["error"] for letter in by_topic[topic])
    assert sum(len(v) for v in by_topic.values()) == sum(len(v) for v in MALFORMED.values())
    # Raw rows keep their Kafka position.
    [row] = query(
        analytics_db,
        f"""SELECT count() AS n, countIf(kafka_offset IS NULL) AS without_offset,
                                          any(kafka_topic) AS topic
                                   FROM analytics.job_events WHERE startsWith(user_id, '{dataset.prefix}')""",
    )
    assert int(row["n"]) > 0 and int(row["without_offset"]) == 0 and row["topic"] == prefix + "jobs"


def test_consumer_lag_is_measured_into_a_table(analytics_db, kafka):
    prefix = f"l{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    # The lag is written every lag_interval_s (5 s unless told); half a second keeps the wait short.
    config = dataclasses.replace(config_from(settings), lag_interval_s=0.5)
    prepare_topics(config, create=True, partitions=2)
    produce(kafka, prefix, datasets.generate(seed=32, users=1).messages)
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings)
        # Wait for a row that shows no lag.
        deadline = time.monotonic() + 30
        while True:
            rows = query(
                analytics_db,
                f"""SELECT topic, partition, lag, high_watermark FROM analytics.kafka_consumer_lag
                                            FINAL WHERE startsWith(topic, '{prefix}') AND topic = '{prefix}jobs'""",
            )
            if rows and all(int(r["lag"]) == 0 for r in rows) and len(rows) == 2:
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.5)
    finally:
        bridge.stop()
    assert sum(int(r["high_watermark"]) for r in rows) > 0


def test_missing_topics_are_named_when_the_bridge_may_not_create_them(analytics_db, kafka):
    settings = settings_for(analytics_db, kafka, f"m{uuid.uuid4().hex[:8]}.")
    with pytest.raises(MissingTopics) as caught:
        prepare_topics(config_from(settings), create=False, partitions=1)
    assert settings.kafka_topic_prefix + "job_logs" in str(caught.value)


def ingest_process(settings: Settings, log_path: Path, extra_env: dict | None = None) -> subprocess.Popen:
    env = {
        **os.environ,
        "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
        "ANALYTICS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ANALYTICS_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "ANALYTICS_KAFKA_CONSUMER_GROUP_PREFIX": settings.kafka_consumer_group_prefix,
        "ANALYTICS_KAFKA_MAX_BLOCK_SIZE": "300",
        "ANALYTICS_KAFKA_FLUSH_INTERVAL_MS": "100",
        "ANALYTICS_DATA_DIR": str(settings.data_dir),
        # No metrics endpoint: on its default port two workers' bridges collided, and the second
        # refused to start (a bridge test then waited out its timeout for messages nobody consumed).
        "ANALYTICS_INGEST_METRICS_PORT": "0",
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "analytics.cli", "ingest"],
        cwd=ROOT,
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
    )  # noqa: SIM115


def test_kill_9_mid_stream_then_restart_counts_every_event_once(analytics_db, kafka, tmp_path):
    prefix = f"k{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    prepare_topics(config_from(settings), create=True, partitions=2)
    dataset = datasets.generate(seed=33, users=12, workflows_per_user=4, jobs_per_workflow=6)
    produce(kafka, prefix, dataset.messages)
    process = ingest_process(settings, tmp_path / "ingest.log")
    try:
        deadline = time.monotonic() + 60
        while (
            int(
                query(
                    analytics_db,
                    f"SELECT count() AS n FROM analytics.job_events WHERE startsWith(user_id, '{dataset.prefix}')",
                )[0]["n"]
            )
            == 0
        ):
            assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "ingest.log").read_text()
            time.sleep(0.05)
        process.kill()  # kill -9 in the middle of the stream
        process.wait()
        assert measured_lag(kafka, settings) > 0  # it really was killed before the end
        process = ingest_process(settings, tmp_path / "ingest.log")
        wait_until_consumed(kafka, settings)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, (tmp_path / "ingest.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert_matches(analytics_db, dataset)


def test_broker_restart_while_producing_loses_nothing(analytics_db, own_kafka):
    kafka = own_kafka  # it is stopped and started again
    prefix = f"r{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    config = config_from(settings)
    prepare_topics(config, create=True, partitions=1)
    dataset = datasets.generate(seed=34, users=8)
    topics = list(dataset.messages.items())
    half = {topic: batch[: len(batch) // 2] for topic, batch in topics}
    rest = {topic: batch[len(batch) // 2 :] for topic, batch in topics}
    bridge = Bridge(config)
    bridge.start()
    try:
        produce(kafka, prefix, half)
        producer_done = threading.Event()
        errors = []

        def produce_rest():
            try:
                produce(kafka, prefix, rest)
            except BaseException as error:  # noqa: BLE001 - checked below
                errors.append(error)
            finally:
                producer_done.set()

        kafka.stop()
        thread = threading.Thread(target=produce_rest)
        thread.start()  # the producer queues and retries while the broker is down
        kafka.start()
        thread.join(120)
        assert producer_done.is_set() and not errors, errors
        wait_until_consumed(kafka, settings)
    finally:
        bridge.stop()
    assert not bridge.failures
    assert_matches(analytics_db, dataset)


def test_several_partitions_keep_each_workflows_order(analytics_db, kafka):
    prefix = f"p{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix, partitions=3)
    config = config_from(settings)
    prepare_topics(config, create=True, partitions=3)
    dataset = datasets.generate(seed=35, users=6, duplicate_rate=0)
    produce(kafka, prefix, dataset.messages)
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings)
    finally:
        bridge.stop()
    assert_matches(analytics_db, dataset)
    rows = query(
        analytics_db,
        f"""SELECT workflow_id, event_id, kafka_partition AS partition, kafka_offset AS offset
                                   FROM analytics.job_events WHERE startsWith(user_id, '{dataset.prefix}')""",
    )
    produced_order = [m["event_id"] for m in dataset.messages["jobs"]]
    position = {event_id: index for index, event_id in enumerate(produced_order)}
    by_workflow: dict[str, list[dict]] = {}
    for row in rows:
        by_workflow.setdefault(row["workflow_id"], []).append(row)
    assert len({row["partition"] for row in rows}) > 1  # the workflows really spread over partitions
    for workflow, events in by_workflow.items():
        assert len({event["partition"] for event in events}) == 1, workflow
        in_offset_order = [e["event_id"] for e in sorted(events, key=lambda e: int(e["offset"]))]
        assert in_offset_order == sorted(in_offset_order, key=position.__getitem__), workflow
