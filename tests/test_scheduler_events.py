"""The scheduler's own `analytics` messages, as its Go code marshals them, through a real broker and
the bridge, answered over gRPC: keyed events count once however often they are produced; keyless
ones (EventKey "" or absent) count once per Kafka position, so a redelivery changes nothing."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest
from confluent_kafka import Producer

from analytics_proto import analytics_pb2 as pb
from embedded.bridge.config import config_from, prepare_topics
from embedded.bridge.runner import Bridge
from tests.grpc_server import start_grpc
from tests.intake import HTTP, insert_statement
from tests.test_bridge import settings_for, wait_until_consumed

pytestmark = pytest.mark.kafka


def marshalled(event_type: str, user: str, workflow: str, data: str, key: str | None) -> bytes:
    """Byte for byte what encoding/json makes of the scheduler's struct (field order, no spaces)."""
    event_key = "" if key is None else f'"EventKey":"{key}",'
    return (
        f'{{{event_key}"UserID":"{user}","WorkflowID":"{workflow}","EventType":"{event_type}","Data":{data}}}'
    ).encode()


def scheduler_messages(user: str) -> list[tuple[str, bytes]]:
    """(record key = workflow id, value) in the order the scheduler would send them."""
    w1, w2 = f"{user}-w1", f"{user}-w2"
    return [
        (w1, marshalled("WORKFLOWS", user, w1, '{"kind":"HEARTBEAT"}', f"{user}-k1")),
        (w2, marshalled("WORKFLOWS", user, w2, '{"kind":"CONTAINER"}', "")),
        (w1, marshalled("JOBS", user, w1, '{"job_execution_duration":12}', f"{user}-k2")),
        (w1, marshalled("JOBS", user, w1, '{"job_execution_duration":7.9}', f"{user}-k3")),
        (w1, marshalled("JOBS", user, w1, '{"job_execution_duration":30}', f"{user}-k4")),
        (w1, marshalled("JOBS", user, w1, '{"job_execution_duration":12}', f"{user}-k2")),  # produced again
        (w2, marshalled("JOBS", user, w2, '{"job_execution_duration":5}', "")),
        (w2, marshalled("JOBS", user, w2, '{"job_execution_duration":6}', "")),
        (w2, marshalled("JOBS", user, w2, '{"job_execution_duration":3}', None)),  # no EventKey at all
        (w1, marshalled("LOGS", user, w1, '{"count":10}', f"{user}-k5")),
        (w2, marshalled("LOGS", user, w2, '{"count":4}', "")),
        (w2, marshalled("LOGS", user, w2, '{"count":4}', "")),  # two keyless messages: two events
    ]


def consume_all(kafka, settings) -> None:
    bridge = Bridge(config_from(settings))
    bridge.start()
    try:
        wait_until_consumed(kafka, settings)
    finally:
        bridge.stop()
    assert not bridge.failures


def test_the_schedulers_events_count_as_it_sends_them_and_redelivery_changes_nothing(analytics_db, kafka, tmp_path):
    prefix = f"s{uuid.uuid4().hex[:8]}."
    user = f"sched-{uuid.uuid4().hex[:8]}"
    settings = settings_for(analytics_db, kafka, prefix, partitions=2)
    prepare_topics(config_from(settings), create=True, partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
    for key, value in scheduler_messages(user):
        producer.produce(prefix + "analytics", value, key=key.encode())
    assert producer.flush(60) == 0

    consume_all(kafka, settings)
    # Kafka delivers everything again at the same positions (another consumer group reading the
    # topic from the start, as after an offset reset): nothing may count twice.
    consume_all(kafka, settings.model_copy(update={"kafka_consumer_group_prefix": f"{prefix}again"}))

    service = start_grpc(tmp_path, "--clickhouse-url", analytics_db.url)
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            totals = stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=10)
            first = stub.GetWorkflowAnalytics(pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=f"{user}-w1"))
            second = stub.GetWorkflowAnalytics(pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=f"{user}-w2"))
    finally:
        assert service.stop() == 0, service.log()
    assert (totals.total_workflows, totals.total_jobs, totals.total_joblogs) == (2, 6, 18)
    assert totals.total_job_execution_duration == 12 + 7 + 30 + 5 + 6 + 3  # whole seconds per job
    assert (first.total_jobs, first.total_joblogs, first.total_job_execution_duration) == (3, 10, 49)
    assert (second.total_jobs, second.total_joblogs, second.total_job_execution_duration) == (3, 8, 14)


def test_a_keyless_event_over_http_counts_each_time_it_is_sent(analytics_db, tmp_path):
    user = f"sched-{uuid.uuid4().hex[:8]}"
    body = marshalled("LOGS", user, f"{user}-w", '{"count":5}', "")
    url = f"{analytics_db.url}/?{urlencode({'query': insert_statement('analytics')})}"
    for _ in range(3):
        response = HTTP.request("POST", url, body=body)
        assert response.status == 200, response.data
    service = start_grpc(tmp_path, "--clickhouse-url", analytics_db.url)
    try:
        with service.channel() as channel:
            totals = service.stub(channel).GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=10)
    finally:
        assert service.stop() == 0, service.log()
    assert totals.total_joblogs == 15
