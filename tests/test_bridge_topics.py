"""Topics changing under the bridge: a topic deleted while it runs, and created again (the other
topics go on, and the new log is read from its first message by the same bridge, without a
restart); messages removed from the broker before the bridge came to them (counted and named)."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from embedded.bridge.config import config_from, prepare_topics
from embedded.bridge.metrics import SKIPPED
from embedded.bridge.runner import Bridge
from tests import datasets
from tests.checks import assert_matches, workflow_numbers
from tests.intake import execute, query
from tests.test_bridge import consume_with_a_bridge, ingest_process, produce, settings_for, wait_until_consumed

pytestmark = pytest.mark.kafka


def eventually(check, timeout: float = 120) -> None:
    """Run `check` until it passes (the timeout an upper bound on a shared machine, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def recreate(admin: AdminClient, topic: str, partitions: int, timeout: float = 60) -> None:
    """Create `topic` again once the broker has finished deleting it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.create_topics([NewTopic(topic, partitions)])[topic].result()
            return
        except KafkaException:  # still being deleted
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_a_deleted_topic_waits_and_its_new_log_is_read_from_the_start(analytics_db, kafka, caplog):
    prefix = f"r{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    config = dataclasses.replace(config_from(settings), lag_interval_s=0.5)  # the topic is checked this often
    prepare_topics(config, create=True, partitions=2)
    before, after = datasets.generate(seed=61, users=2), datasets.generate(seed=62, users=4)
    jobs = prefix + "jobs"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    produce(kafka, prefix, before.messages)
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings)
        admin.delete_topics([jobs])[jobs].result()
        # While `jobs` is missing, the other topics are consumed: the bridge goes on.
        produce(kafka, prefix, {topic: batch for topic, batch in after.messages.items() if topic != "jobs"})
        eventually(lambda: assert_job_logs_counted(analytics_db, after))
        # librdkafka says the subscribed topic is gone at its next metadata refresh (10 s).
        eventually(lambda: assert_said(caplog, f"bridge-jobs-0: topic {jobs} does not exist"), timeout=60)
        assert "waiting for it (`analytics topics` creates it)" in caplog.text
        assert not bridge.failures
        # Nothing measures the deleted topic's partitions: their lag rows go (else a stalled bridge, for ever).
        eventually(lambda: assert_lag_partitions(analytics_db, jobs, []), timeout=30)
        eventually(lambda: assert_lag_partitions(analytics_db, prefix + "workflows", [0, 1]), timeout=30)
        # The new `jobs` holds more messages than the old one's committed offsets: any read that
        # went on from those offsets would miss its first messages. It has one partition where the
        # old one had two.
        recreate(admin, jobs, partitions=1)
        produce(kafka, prefix, {"jobs": after.messages["jobs"]})
        eventually(lambda: assert_matches(analytics_db, after))
        eventually(lambda: assert_lag_partitions(analytics_db, jobs, [0]), timeout=30)
    finally:
        bridge.stop()
    assert not bridge.failures
    assert_matches(analytics_db, before)


def test_a_topic_deleted_and_created_again_at_once_is_read_from_its_first_message(analytics_db, kafka, caplog):
    # Deleted and created again between two of the consumer's metadata refreshes: it sees no
    # deletion, and went on at its old positions in the new log, committing them there.
    prefix = f"q{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    config = dataclasses.replace(config_from(settings), lag_interval_s=0.5)
    prepare_topics(config, create=True, partitions=2)
    jobs = prefix + "jobs"
    produce(kafka, prefix, {"jobs": datasets.generate(seed=67, users=1).messages["jobs"][:10]})
    fresh = datasets.generate(seed=68, users=2, duplicate_rate=0).messages["jobs"][:20]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings)
        admin.delete_topics([jobs])[jobs].result()
        recreate(admin, jobs, partitions=2)
        time.sleep(3)  # the consumer's old positions, committed in the new log or not
        produce(kafka, prefix, {"jobs": fresh})
        eventually(lambda: assert_stored(analytics_db, fresh), timeout=60)
    finally:
        bridge.stop()
    assert not bridge.failures
    assert f"bridge-jobs-0: topic {jobs} " in caplog.text
    assert "a new consumer reads it from its first message" in caplog.text


def assert_stored(analytics_db, events: list[dict]) -> None:
    ids = ", ".join(f"'{event['event_id']}'" for event in events)
    [row] = query(analytics_db, f"SELECT uniqExact(event_id) AS n FROM analytics.job_events WHERE event_id IN ({ids})")
    assert int(row["n"]) == len(events)


def test_a_topic_created_again_with_fewer_partitions_while_no_bridge_ran_keeps_no_lag_of_the_old_ones(
    analytics_db, kafka
):
    prefix = f"p{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    config = dataclasses.replace(config_from(settings), lag_interval_s=0.5)
    prepare_topics(config, create=True, partitions=2)
    jobs = prefix + "jobs"
    dataset = datasets.generate(seed=66, users=2)
    produce(kafka, prefix, {"jobs": dataset.messages["jobs"]})
    consume_until_lag_rows(kafka, settings, config, analytics_db, jobs, [0, 1])
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.delete_topics([jobs])[jobs].result()
    recreate(admin, jobs, partitions=1)
    produce(kafka, prefix, {"jobs": dataset.messages["jobs"]})
    # The rows go by a mutation, which merges stopped hold back: the bridge does not wait for it.
    execute(analytics_db, "SYSTEM STOP MERGES analytics.kafka_consumer_lag")
    try:
        consume_until_lag_rows(kafka, settings, config, analytics_db, jobs, [0, 1], then=start_merges)
    finally:
        start_merges(analytics_db)
    assert_lag_partitions(analytics_db, jobs, [0])


def start_merges(analytics_db) -> None:
    execute(analytics_db, "SYSTEM START MERGES analytics.kafka_consumer_lag")


def consume_until_lag_rows(kafka, settings, config, analytics_db, topic, partitions, then=None) -> None:
    """Run a bridge until its lag is 0 and the topic's lag rows are of `partitions`; with `then`,
    call it there and wait for the rows of partition 0 alone."""
    bridge = Bridge(config)
    bridge.start()
    try:
        wait_until_consumed(kafka, settings)
        eventually(lambda: assert_lag_partitions(analytics_db, topic, partitions), timeout=30)
        if then is not None:
            then(analytics_db)
            eventually(lambda: assert_lag_partitions(analytics_db, topic, [0]), timeout=30)
    finally:
        bridge.stop()
    assert not bridge.failures


def lag_partitions(analytics_db, topic: str) -> list[int]:
    rows = query(
        analytics_db,
        f"SELECT partition FROM analytics.kafka_consumer_lag FINAL WHERE topic = '{topic}' ORDER BY partition",
    )
    return [int(row["partition"]) for row in rows]


def assert_lag_partitions(analytics_db, topic: str, partitions: list[int]) -> None:
    assert lag_partitions(analytics_db, topic) == partitions


def assert_job_logs_counted(analytics_db, dataset: datasets.Dataset) -> None:
    stored = workflow_numbers(analytics_db, dataset.prefix)
    assert {key: int(row["joblogs"]) for key, row in stored.items() if int(row["joblogs"])} == {
        key: n for key, n in dataset.expected.joblogs.items() if n
    }


def assert_said(caplog, text: str) -> None:
    assert text in caplog.text


def test_messages_removed_before_the_bridge_came_to_them_are_counted_and_named(analytics_db, kafka, caplog):
    prefix = f"d{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    config = config_from(settings)
    prepare_topics(config, create=True, partitions=1)
    dataset = datasets.generate(seed=65, users=6)
    lines = dataset.messages["job_logs"]
    produce(kafka, prefix, {"job_logs": lines[:50]})
    consume_with_a_bridge(kafka, settings, config)
    # While no bridge runs, 100 more arrive and the first 30 of them are removed (as retention would).
    produce(kafka, prefix, {"job_logs": lines[50:150]})
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    cut = TopicPartition(prefix + "job_logs", 0, 80)
    admin.delete_records([cut])[cut].result()
    before = SKIPPED.labels("job_logs")._value.get()
    consume_with_a_bridge(kafka, settings, config)
    assert SKIPPED.labels("job_logs")._value.get() - before == 30
    assert (
        f"{prefix}job_logs [0]: offsets 50 to 79 were removed from the broker before they were consumed"
        " (retention or DeleteRecords): 30 messages never counted; going on from offset 80"
    ) in caplog.text
    entries = sum(int(row["joblogs"]) for row in workflow_numbers(analytics_db, dataset.prefix).values())
    kept = {line["event_id"]: line.get("count", 1) for line in lines[:50] + lines[80:150]}  # duplicates once
    assert entries == sum(kept.values())


def test_ingest_says_which_topics_it_created_and_with_how_many_partitions(analytics_db, kafka, tmp_path):
    prefix = f"c{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    prepare_topics(config_from(settings), create=True, partitions=3)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.delete_topics([prefix + "workflows"])[prefix + "workflows"].result()
    eventually(lambda: assert_gone(admin, prefix + "workflows"), timeout=60)
    log = tmp_path / "ingest.log"
    process = ingest_process(settings, log)
    try:
        eventually(lambda: assert_said_in(log, "consuming "), timeout=60)
    finally:
        process.terminate()
        process.wait(60)
    said = log.read_text()
    assert f"{prefix}workflows: created, 1 partition (ANALYTICS_KAFKA_TOPIC_PARTITIONS)" in said
    assert f"{prefix}jobs: created" not in said


def assert_said_in(log, text: str) -> None:
    assert text in log.read_text()


def assert_gone(admin: AdminClient, topic: str) -> None:
    assert topic not in admin.list_topics(timeout=10).topics
