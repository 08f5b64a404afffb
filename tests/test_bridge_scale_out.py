"""Two bridge processes on one consumer group: they split the partitions, and a rebalance in the
middle of a backlog loses and double-counts nothing; a partition added to a topic is consumed
without a restart. Against the real broker."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from core.settings.composed import Settings
from embedded.bridge.config import config_from, prepare_topics
from embedded.bridge.runner import Bridge
from tests import datasets
from tests.checks import assert_matches
from tests.grpc_server import start_up
from tests.intake import query
from tests.malformed import valid_event
from tests.test_bridge import produce, settings_for, wait_until_consumed

# long_file: seconds of a worker, measured: run first (tests/scheduling.py)
pytestmark = [pytest.mark.kafka, pytest.mark.long_file(34)]
ROOT = Path(__file__).resolve().parent.parent


def bridge_process(settings: Settings, instance: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
        "ANALYTICS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ANALYTICS_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "ANALYTICS_KAFKA_CONSUMER_GROUP_PREFIX": settings.kafka_consumer_group_prefix,
        "ANALYTICS_KAFKA_INSTANCE_NAME": instance,
        "ANALYTICS_KAFKA_MAX_BLOCK_SIZE": "200",
        "ANALYTICS_KAFKA_FLUSH_INTERVAL_MS": "100",
        # A stopped bridge's partitions move after this (and a fenced twin notices within a third of it).
        "ANALYTICS_KAFKA_SESSION_TIMEOUT_MS": "3000",
        "ANALYTICS_INGEST_METRICS_PORT": "0",
        "ANALYTICS_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "analytics.cli", "ingest", "--no-create-topics"],
        cwd=ROOT,
        env=env,
        stdout=open(log_path, "ab"),  # noqa: SIM115 - owned by the child
        stderr=subprocess.STDOUT,
    )


def members(kafka, group: str) -> dict[str, set[int]]:
    """The group's members (by instance id) and the partitions each holds."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {
        member.group_instance_id: {tp.partition for tp in member.assignment.topic_partitions}
        for member in description.members
    }


def job_events(analytics_db, prefix: str) -> int:
    sql = f"SELECT count() AS n FROM analytics.job_events WHERE startsWith(user_id, '{prefix}')"
    return int(query(analytics_db, sql)[0]["n"])


def wait_for(condition, what: str, logs: list[Path], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s\n" + "\n".join(
            p.read_text()[-2000:] for p in logs if p.exists()
        )
        time.sleep(0.1)


def test_two_bridges_split_partitions_and_a_rebalance_mid_backlog_counts_each_event_once(analytics_db, kafka, tmp_path):
    prefix = f"so{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix, partitions=4)
    prepare_topics(config_from(settings), create=True, partitions=4)
    dataset = datasets.generate(seed=51, users=16, workflows_per_user=5, jobs_per_workflow=8)
    more = datasets.generate(seed=52, users=4, workflows_per_user=3, jobs_per_workflow=5)
    produce(kafka, prefix, dataset.messages)
    group = f"{settings.kafka_consumer_group_prefix}_jobs"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    first = bridge_process(settings, "bridge-a", logs[0])
    second = None
    try:
        # The first bridge is in the middle of the backlog when the second one joins.
        wait_for(lambda: job_events(analytics_db, dataset.prefix) > 0, "first bridge consuming", logs)
        second = bridge_process(settings, "bridge-b", logs[1])

        def split() -> bool:
            held = members(kafka, group)
            return len(held) == 2 and all(held.values()) and not set.intersection(*held.values())

        wait_for(split, "the jobs partitions split between two bridges", logs)
        held = members(kafka, group)
        assert set.union(*held.values()) == {0, 1, 2, 3}
        assert {name.split("-bridge-")[0] for name in held} == {"bridge-a", "bridge-b"}
        # Once more: the first one stops; a static member's partitions wait for it a session
        # timeout long, then the second one takes them over, with more events arriving meanwhile.
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0, logs[0].read_text()[-3000:]
        produce(kafka, prefix, more.messages)
        wait_for(lambda: members(kafka, group) == {"bridge-b-bridge-jobs-0": {0, 1, 2, 3}}, "take-over", logs)
        wait_until_consumed(kafka, settings, timeout=180)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, logs[1].read_text()[-3000:]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
    assert_matches(analytics_db, dataset)
    assert_matches(analytics_db, more)


def test_a_second_bridge_with_the_same_instance_name_stops_the_first_with_a_clear_error(analytics_db, kafka, tmp_path):
    prefix = f"sf{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix, partitions=2)
    prepare_topics(config_from(settings), create=True, partitions=2)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    first = bridge_process(settings, "twin", logs[0])
    second = None
    try:
        group = f"{settings.kafka_consumer_group_prefix}_jobs"
        wait_for(lambda: "twin-bridge-jobs-0" in members(kafka, group), "first bridge in its group", logs)
        second = bridge_process(settings, "twin", logs[1])
        assert first.wait(90) != 0
        assert "give each bridge process its own ANALYTICS_KAFKA_INSTANCE_NAME" in logs[0].read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()


def test_a_partition_added_to_a_topic_is_consumed_without_a_restart(analytics_db, kafka):
    prefix = f"np{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    config = dataclasses.replace(config_from(settings), topics=("workflows",))
    prepare_topics(config, create=True, partitions=1)
    user = f"{prefix}user"
    first, second = (valid_event("workflows", n, user) for n in range(2))
    bridge = Bridge(config)
    bridge.start()
    try:
        produce(kafka, prefix, {"workflows": [first]})
        wait_until_consumed(kafka, settings, timeout=60)
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        admin.create_partitions([NewPartitions(prefix + "workflows", 2)])[prefix + "workflows"].result(30)
        producer = Producer({"bootstrap.servers": kafka.bootstrap})  # knows the new partition
        producer.produce(prefix + "workflows", json.dumps(second).encode(), partition=1)
        assert producer.flush(30) == 0
        # An upper bound on a shared machine: librdkafka's default reads a topic's partitions every 5 minutes.
        wait_for(lambda: workflows_of(analytics_db, user) == 2, "the new partition's message", [], timeout=60)
    finally:
        bridge.stop()
    assert not bridge.failures


def test_partitions_added_while_the_bridge_was_stopped_are_consumed_after_its_restart(analytics_db, kafka):
    """Restarted within its session timeout, a static member is given its old assignment back
    without a rebalance, and librdkafka compares the partitions it sees with those it saw when it
    joined: the partitions added meanwhile were held by nobody, never read, and no lag said so."""
    prefix = f"nr{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    config = dataclasses.replace(config_from(settings), topics=("workflows",))
    prepare_topics(config, create=True, partitions=1)
    user = f"{prefix}user"
    produce(kafka, prefix, {"workflows": [valid_event("workflows", 0, user)]})
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings, timeout=60)
    finally:
        bridge.stop()
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_partitions([NewPartitions(prefix + "workflows", 3)])[prefix + "workflows"].result(30)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for n in range(1, 7):
        producer.produce(prefix + "workflows", json.dumps(valid_event("workflows", n, user)).encode(), partition=n % 3)
    assert producer.flush(30) == 0
    bridge = Bridge(config)  # within the session timeout: the group keeps the stopped one's place for it
    bridge.start()
    try:
        # An upper bound on a shared machine, not a speed claim.
        wait_for(lambda: workflows_of(analytics_db, user) == 7, "the added partitions' messages", [], timeout=120)
    finally:
        bridge.stop()
    assert not bridge.failures


def workflows_of(analytics_db, user: str) -> int:
    rows = query(analytics_db, f"SELECT total_workflows FROM analytics.user_totals WHERE user_id = '{user}'")
    return int(rows[0]["total_workflows"]) if rows else 0


def test_the_bridge_of_analytics_up_failing_stops_the_stack_with_exit_status_1(kafka, tmp_path):
    """`up` went on serving when its bridge stopped (here fenced by a twin of the same instance
    name), saying nothing more, while the topics' lag grew for good."""
    prefix = f"uf{uuid.uuid4().hex[:8]}."
    kafka_env = {
        "ANALYTICS_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "ANALYTICS_KAFKA_TOPIC_PREFIX": prefix,
        "ANALYTICS_KAFKA_CONSUMER_GROUP_PREFIX": f"{prefix}group",
        "ANALYTICS_KAFKA_INSTANCE_NAME": "twin",
        "ANALYTICS_KAFKA_SESSION_TIMEOUT_MS": "3000",
        "ANALYTICS_INGEST_METRICS_PORT": "0",
    }
    up = start_up(tmp_path / "data", env=kafka_env)
    twin = None
    try:
        group = f"{prefix}group_jobs"
        wait_for(lambda: "twin-bridge-jobs-0" in members(kafka, group), "up's bridge in its group", [up.log_path])
        twin_env = {**os.environ, **kafka_env, "ANALYTICS_CLICKHOUSE_HTTP_PORT": up.extra["url"].rsplit(":", 1)[1]}
        twin_env["ANALYTICS_DATA_DIR"] = str(tmp_path / "twin")
        twin = subprocess.Popen(
            [sys.executable, "-m", "analytics.cli", "ingest", "--no-create-topics"],
            cwd=ROOT,
            env=twin_env,
            stdout=open(tmp_path / "twin.log", "ab"),  # noqa: SIM115 - owned by the child
            stderr=subprocess.STDOUT,
        )
        assert up.process.wait(120) == 1, up.log()[-3000:]
        assert "Kafka bridge stopped" in up.log() and "the stack stops (exit status 1)" in up.log()
    finally:
        for process in (twin, up.process):
            if process is not None and process.poll() is None:
                process.kill()
