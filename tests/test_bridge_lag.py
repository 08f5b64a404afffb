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
import urllib3
from confluent_kafka import Consumer, Producer

from embedded.bridge.config import config_from, prepare_topics
from embedded.bridge.runner import Bridge
from tests.embedded_server import free_port
from tests.intake import query
from tests.malformed import valid_event
from tests.test_bridge import ingest_process, settings_for, wait_until_consumed
from tests.test_metrics import scrape

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


def exported_lag(port: int) -> dict[int, float]:
    """The jobs partitions an `analytics ingest` process exports a consumer lag for, and the lag."""
    try:
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
    except urllib3.exceptions.HTTPError:  # not serving yet
        return {}
    return {
        int(labels["partition"]): value
        for (name, pairs), value in samples.items()
        if name == "analytics_bridge_consumer_lag" and (labels := dict(pairs))["topic"] == "jobs"
    }


def test_a_partition_another_member_of_the_group_takes_leaves_the_bridges_lag_metric(analytics_db, kafka, tmp_path):
    """A bridge went on exporting the last lag it measured of a partition it no longer consumed
    (taken by another bridge in a rebalance, as when partitions are added): a frozen number summed
    with the new owner's, for ever."""
    prefix = f"m{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix, partitions=2)
    prepare_topics(config_from(settings), create=True, partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for partition in (0, 1):
        producer.produce(prefix + "jobs", json.dumps(valid_event("jobs", partition)).encode(), partition=partition)
    assert producer.flush(30) == 0
    port, log_path = free_port(), tmp_path / "ingest.log"
    bridge = ingest_process(settings, log_path, {"ANALYTICS_INGEST_METRICS_PORT": str(port)})
    other = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"{prefix}group_jobs"})
    try:
        wait_until(lambda: set(exported_lag(port)) == {0, 1}, "the lag of both partitions", log_path)
        other.subscribe([prefix + "jobs"])  # another member: the group splits the partitions
        wait_until(lambda: [other.poll(0.2), other.assignment()][1], "a partition taken", log_path)
        [taken] = [tp.partition for tp in other.assignment()]
        kept = 1 - taken
        wait_until(lambda: set(exported_lag(port)) == {kept}, f"no lag exported for partition {taken}", log_path, 30)
    finally:
        other.close()
        bridge.terminate()
        bridge.wait(60)
    assert bridge.returncode == 0, log_path.read_text()[-3000:]


def wait_until(condition, what: str, log_path, timeout: float = 60) -> None:
    """Until `condition` holds (the timeout an upper bound on a shared machine, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s\n{log_path.read_text()[-3000:]}"
        time.sleep(0.2)
