"""Calls of one kind never take the threads another kind needs.

`analytics grpc` with two workers and four log tails, over a real channel: health Watch streams
(grpc-go's client-side health checking opens one a connection) and analytics calls waiting for a
worker each held one of the server's threads, so enough of either left no thread for the rest.
"""

from __future__ import annotations

import contextlib

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from analytics_proto import analytics_pb2 as pb
from tests import test_grpc_serving
from tests.embedded_server import free_port
from tests.grpc_server import sample, scrape, start_grpc, wait_until

WORKERS, MAX_TAILS = 2, 4
relay, small = test_grpc_serving.relay, test_grpc_serving.small  # the held relay and a small data set
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def service(relay, tmp_path):
    metrics_port = free_port()
    server = start_grpc(
        tmp_path,
        "--clickhouse-url",
        relay.url,
        "--workers",
        str(WORKERS),
        "--metrics-port",
        str(metrics_port),
        env={"ANALYTICS_GRPC_MAX_LOG_TAILS": str(MAX_TAILS)},
    )
    server.extra["metrics_url"] = f"http://127.0.0.1:{metrics_port}/metrics"
    yield server
    assert server.stop() == 0, server.log()


def started(service, method: str) -> float:
    return sample(scrape(service.extra["metrics_url"]), "analytics_grpc_requests_total", grpc_method=method)


def test_open_health_watches_hold_no_thread(service, small):
    user = small.expected.users[0]
    with service.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watches = [health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=120) for _ in range(3 * MAX_TAILS)]
        try:
            for watch in watches:
                assert next(watch).status == SERVING
            answer = service.stub(channel).GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=30)
            assert (answer.total_workflows, answer.total_jobs) == small.expected.user(user)[:2]
            assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30).status == SERVING
        finally:
            for watch in watches:
                watch.cancel()


def test_a_log_tail_starts_while_every_worker_is_busy_and_calls_wait_for_one(service, small, relay):
    users = small.expected.users
    calls = WORKERS + MAX_TAILS  # as many as the server has threads for calls other than tails
    with service.channel() as channel:
        stub = service.stub(channel)
        relay.hold()
        waiting = [
            stub.GetUserAnalytics.future(pb.GetUserAnalyticsRequest(user_id=users[n % len(users)]), timeout=120)
            for n in range(calls)
        ]
        wait_until(lambda: started(service, "GetUserAnalytics") == calls, "every call to hold a thread")
        tail = stub.StreamJobLogs(
            pb.StreamJobLogsRequest(user_id=users[0], workflow_id="wf", job_id="job"), timeout=120
        )
        try:
            wait_until(lambda: started(service, "StreamJobLogs") == 1, "the log tail to start")
        finally:
            relay.release()
            tail.cancel()
        for call, n in zip(waiting, range(calls), strict=True):
            assert call.result(60).total_jobs == small.expected.user(users[n % len(users)])[1]


def test_a_burst_of_log_tails_sends_clickhouse_no_more_queries_at_once_than_the_workers(service, small, relay):
    """Each tail's first queries (its job's state, the clock, its history) ran at once for every
    tail: 250 tails at once had ClickHouse refuse other clients (TOO_MANY_SIMULTANEOUS_QUERIES)."""
    user, workflow = next(iter(sorted(small.expected.workflows)))
    tails = 3 * MAX_TAILS // 2  # within the limit of tails, three times the workers
    with service.channel() as channel:
        stub = service.stub(channel)
        relay.hold()
        calls = [
            stub.StreamJobLogs(pb.StreamJobLogsRequest(user_id=user, workflow_id=workflow, job_id="j"), timeout=120)
            for _ in range(tails)
        ]
        wait_until(lambda: started(service, "StreamJobLogs") == tails, "every tail to start")
        with contextlib.suppress(AssertionError):  # as many as there are workers, and no more
            wait_until(lambda: relay.held >= tails, "every tail's first query", timeout=5)
        relay.release()
        for call in calls:
            call.cancel()
    assert 0 < relay.most_held <= WORKERS, f"{relay.most_held} queries at once from {tails} tails"
