"""Crash windows forced with the bridge's fault points (embedded/fault_points.py), not left to chance:
killed between an insert and its commit, stopped with a batch in flight. Either way every number
is exact and raw history holds each event once."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
import urllib3
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition

from analytics.cli import main
from embedded import fault_points
from embedded.bridge.config import config_from, prepare_topics
from tests import datasets
from tests.checks import assert_matches
from tests.embedded_server import free_port
from tests.intake import query
from tests.raw_history import assert_raw_history_once
from tests.test_bridge import ingest_process, produce, settings_for, wait_until_consumed
from tests.test_metrics import scrape

# long_file: seconds of a worker, measured: run first (tests/scheduling.py)
pytestmark = [pytest.mark.kafka, pytest.mark.long_file(11)]


def wait_for(marker, process, log_path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)


def committed_jobs(kafka, settings) -> int:
    """How many messages of the (one-partition) jobs topic the bridge's group has committed."""
    consumer = Consumer(
        {"bootstrap.servers": kafka.bootstrap, "group.id": f"{settings.kafka_consumer_group_prefix}_jobs"}
    )
    try:
        [position] = consumer.committed([TopicPartition(settings.kafka_topic_prefix + "jobs", 0)], timeout=30)
    finally:
        consumer.close()
    return max(position.offset, 0)


def distinct_job_events(messages: list[dict]) -> int:
    return len({message["event_id"] for message in messages})


def job_events(server, dataset) -> int:
    sql = f"SELECT count() AS n FROM analytics.job_events WHERE startsWith(user_id, '{dataset.prefix}')"
    return int(query(server, sql)[0]["n"])


def finish_and_check(analytics_db, kafka, settings, dataset, log_path) -> None:
    """A bridge without faults takes what is left; then the numbers and the raw history."""
    process = ingest_process(settings, log_path)
    try:
        wait_until_consumed(kafka, settings)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert_matches(analytics_db, dataset)
    assert_raw_history_once(analytics_db, dataset)


def test_killed_after_the_insert_before_the_commit_counts_every_event_once(analytics_db, kafka, tmp_path):
    prefix = f"f{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    prepare_topics(config_from(settings), create=True, partitions=1)
    dataset = datasets.generate(seed=35, users=6)
    produce(kafka, prefix, dataset.messages)
    log_path, marker = tmp_path / "ingest.log", tmp_path / "reached"
    fault = {"ANALYTICS_FAULT_POINT": "batch_inserted:kill:jobs", "ANALYTICS_FAULT_MARKER": str(marker)}
    process = ingest_process(settings, log_path, fault)
    assert process.wait(120) == -signal.SIGKILL, log_path.read_text()
    assert marker.read_text() == "batch_inserted jobs\n"
    # The window really opened: ClickHouse holds job events beyond what the group committed,
    # so Kafka delivers them again to the next bridge.
    committed = committed_jobs(kafka, settings)
    assert job_events(analytics_db, dataset) > distinct_job_events(dataset.messages["jobs"][:committed])
    finish_and_check(analytics_db, kafka, settings, dataset, log_path)


def test_sigterm_with_a_batch_in_flight_inserts_and_commits_it(analytics_db, kafka, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    prepare_topics(config_from(settings), create=True, partitions=1)
    dataset = datasets.generate(seed=36, users=6)
    produce(kafka, prefix, dataset.messages)
    log_path, marker = tmp_path / "ingest.log", tmp_path / "reached"
    fault = {
        "ANALYTICS_FAULT_POINT": "batch_taken:hold:jobs",
        "ANALYTICS_FAULT_MARKER": str(marker),
        "ANALYTICS_KAFKA_MAX_BLOCK_SIZE": "100",  # the held batch is a part of the topic
    }
    process = ingest_process(settings, log_path, fault)
    try:
        wait_for(marker, process, log_path)
        assert job_events(analytics_db, dataset) == 0  # the jobs batch is taken from Kafka, not inserted
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    # The held batch went in and was committed before the bridge exited: what ClickHouse holds is
    # exactly the committed messages' events.
    committed = committed_jobs(kafka, settings)
    assert 0 < committed < len(dataset.messages["jobs"])
    assert job_events(analytics_db, dataset) == distinct_job_events(dataset.messages["jobs"][:committed])
    finish_and_check(analytics_db, kafka, settings, dataset, log_path)


BLOCK = 50  # messages a batch, so the jobs topic is several batches


def consumed_jobs(port: int) -> float:
    """The jobs messages an `analytics ingest` process says it has consumed (0 before it serves)."""
    try:
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
    except urllib3.exceptions.HTTPError:  # not serving yet
        return 0
    return samples.get(("analytics_bridge_messages_total", (("topic", "jobs"),)), 0)


def test_the_next_batch_is_read_while_one_is_inserted_and_both_go_in_in_order(analytics_db, kafka, tmp_path):
    """A consumer reads its next batch while the one before is being inserted (the insert held at
    batch_taken): the wait for an insert no longer stops the reading. At SIGTERM the held batch goes
    in, then the one read beside it, each committed: nothing more, nothing lost."""
    prefix = f"n{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    prepare_topics(config_from(settings), create=True, partitions=1)
    dataset = datasets.generate(seed=37, users=6)
    assert len(dataset.messages["jobs"]) > 3 * BLOCK
    produce(kafka, prefix, dataset.messages)
    log_path, marker, port = tmp_path / "ingest.log", tmp_path / "reached", free_port()
    fault = {
        "ANALYTICS_FAULT_POINT": "batch_taken:hold:jobs",
        "ANALYTICS_FAULT_MARKER": str(marker),
        "ANALYTICS_KAFKA_MAX_BLOCK_SIZE": str(BLOCK),
        "ANALYTICS_INGEST_METRICS_PORT": str(port),
    }
    process = ingest_process(settings, log_path, fault)
    try:
        wait_for(marker, process, log_path)
        deadline = time.monotonic() + 60  # an upper bound on a shared machine, not a speed claim
        while consumed_jobs(port) < 2 * BLOCK:
            assert process.poll() is None and time.monotonic() < deadline, (consumed_jobs(port), log_path.read_text())
            time.sleep(0.1)
        assert job_events(analytics_db, dataset) == 0  # the first batch is still held
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    # A full batch stops the reading until the one before it has gone in: two batches, no more.
    assert committed_jobs(kafka, settings) == 2 * BLOCK
    assert job_events(analytics_db, dataset) == distinct_job_events(dataset.messages["jobs"][: 2 * BLOCK])
    finish_and_check(analytics_db, kafka, settings, dataset, log_path)


def test_a_malformed_fault_point_stops_the_bridge_at_start():
    """Refused before any topic is touched, not when the first batch reaches a point."""
    fault_points._configured.cache_clear()  # read once per process: forget what an earlier test saw
    try:
        result = CliRunner().invoke(
            main,
            ["ingest", "--kafka", "127.0.0.1:1", "--clickhouse-url", "http://127.0.0.1:1"],
            env={"ANALYTICS_FAULT_POINT": "batch_taken:explode"},
        )
    finally:
        fault_points._configured.cache_clear()
    assert result.exit_code == 1, result.output
    assert "ANALYTICS_FAULT_POINT='batch_taken:explode'" in result.output
    assert "an action of kill, hold" in result.output
