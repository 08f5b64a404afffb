"""Serving speed without giving up exactness: coalesced lookups, admission control, the serving model.

All over real gRPC channels to `analytics grpc`, reading the embedded ClickHouse; a held TCP
relay between them keeps ClickHouse's answers back for as long as a test needs, without timing.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from tests import datasets
from tests.embedded_server import free_port
from tests.grpc_server import HeldRelay, sample, scrape, start_grpc, wait_until
from tests.intake import deliver, query

pytestmark = pytest.mark.long_file(26)  # seconds of a worker, measured: run first (tests/scheduling.py)

BOUND = 1.0  # the serving model's staleness bound in these tests, seconds
SETTLE = 0.5  # seconds for a finished call to stop counting against the concurrency limit


@pytest.fixture(scope="module")
def small(analytics_db):
    dataset = datasets.generate(seed=61, users=4, workflows_per_user=3, jobs_per_workflow=4)
    deliver(analytics_db, dataset.messages)
    return dataset


@pytest.fixture
def relay(analytics_db):
    relay = HeldRelay(analytics_db.port)
    yield relay
    relay.close()


def mixed_requests(dataset) -> list[tuple[str, object, object]]:
    """(method, request, expected answer or NOT_FOUND) for users, workflows, unknowns and others' workflows."""
    expected = dataset.expected
    users = sorted(expected.users)
    cases: list[tuple[str, object, object]] = []
    for user in users:
        cases.append(("GetUserAnalytics", pb.GetUserAnalyticsRequest(user_id=user), expected.user(user)))
    for user, workflow in sorted(expected.workflows):
        cases.append(
            (
                "GetWorkflowAnalytics",
                pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=workflow),
                expected.workflow(user, workflow),
            )
        )
        other = users[(users.index(user) + 1) % len(users)]
        cases.append(
            (
                "GetWorkflowAnalytics",
                pb.GetWorkflowAnalyticsRequest(user_id=other, workflow_id=workflow),
                grpc.StatusCode.NOT_FOUND,
            )
        )
    cases.append(("GetUserAnalytics", pb.GetUserAnalyticsRequest(user_id="nobody-here"), grpc.StatusCode.NOT_FOUND))
    return cases


def answer_of(stub, method: str, request, timeout: float = 30):
    try:
        response = getattr(stub, method)(request, timeout=timeout)
    except grpc.RpcError as error:
        return error.code()
    if method == "GetUserAnalytics":
        return (
            response.total_workflows,
            response.total_jobs,
            response.total_joblogs,
            response.total_job_execution_duration,
        )
    assert response.workflow_id == request.workflow_id
    return (response.total_jobs, response.total_joblogs, response.total_job_execution_duration)


# -- coalescing ---------------------------------------------------------------------------------


def test_lookups_held_together_are_answered_by_shared_queries_each_exactly(small, relay, tmp_path):
    metrics_port = free_port()
    cases = mixed_requests(small) * 2
    service = start_grpc(
        tmp_path,
        "--clickhouse-url",
        relay.url,
        "--metrics-port",
        str(metrics_port),
        env={"ANALYTICS_GRPC_WORKERS": str(len(cases))},  # a thread for every call: all are held at once
    )
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        with service.channel() as channel, ThreadPoolExecutor(len(cases)) as pool:
            stub = service.stub(channel)
            relay.hold()
            futures = [pool.submit(answer_of, stub, method, request) for method, request, _ in cases]
            # Every call is in a lookup: a batch of each kind held in ClickHouse, the rest queued behind.
            wait_until(
                lambda: sample(scrape(metrics_url), "analytics_grpc_lookups_pending") == len(cases),
                "every call to wait for its lookup",
            )
            relay.release()
            answers = [future.result(timeout=60) for future in futures]
        for (method, request, expected), got in zip(cases, answers, strict=True):
            assert got == expected, (method, request)
        text = scrape(metrics_url)
        batches = sample(text, "analytics_grpc_lookup_batch_keys_count")
        keys = sample(text, "analytics_grpc_lookup_batch_keys_sum")
        assert keys >= len({(m, r.SerializeToString()) for m, r, _ in cases})
        # Of each kind, the two batches held (parallel=2) and one for every lookup queued behind them.
        assert batches <= 2 * 3, f"the held lookups were not coalesced: {batches} queries for {len(cases)} calls"
        assert sample(text, "analytics_grpc_lookups_pending") == 0
    finally:
        relay.release()
        assert service.stop() == 0, service.log()


# -- admission control --------------------------------------------------------------------------


def test_calls_beyond_the_workers_and_the_queue_are_refused_at_once(small, relay, tmp_path):
    # One worker, one tail thread (both may run a lookup), one queued call: three calls at most.
    service = start_grpc(
        tmp_path,
        "--clickhouse-url",
        relay.url,
        "--workers",
        "1",
        "--max-queued-calls",
        "1",
        env={"ANALYTICS_GRPC_MAX_LOG_TAILS": "1"},
    )
    user = sorted(small.expected.users)[0]
    # The health check that found the service up counts against the limit until its handler's
    # thread has returned, a moment after its answer (grpc's server lowers the count then): let it.
    time.sleep(SETTLE)
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            relay.hold()
            calls = [
                stub.GetUserAnalytics.future(pb.GetUserAnalyticsRequest(user_id=user), timeout=60) for _ in range(6)
            ]
            refused = wait_until(
                lambda: [c for c in calls if c.done() and c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED],
                "calls to be refused",
            )
            time.sleep(0.3)  # nothing else is refused while three calls are held or queued
            refused = [c for c in calls if c.done() and c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
            assert len(refused) == 3
            relay.release()
            answered = [c.result(timeout=60) for c in calls if c not in refused]
        assert len(answered) == 3
        for response in answered:
            assert response.total_jobs == small.expected.user(user)[1]
        # Once the load is gone, calls are served again.
        with service.channel() as channel:
            assert service.stub(channel).GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=30)
    finally:
        relay.release()
        assert service.stop() == 0, service.log()


# -- the serving model --------------------------------------------------------------------------


def launch_served(tmp_path, url: str, bound: float = BOUND, env: dict | None = None):
    """`analytics grpc` with the serving model on and its metrics port in extra["metrics_url"]."""
    metrics_port = free_port()
    service = start_grpc(
        tmp_path,
        "--clickhouse-url",
        url,
        "--serving-max-staleness",
        str(bound),
        "--metrics-port",
        str(metrics_port),
        env=env,
    )
    service.extra["metrics_url"] = f"http://127.0.0.1:{metrics_port}/metrics"
    return service


def start_served(tmp_path, url: str, bound: float = BOUND, env: dict | None = None):
    service = launch_served(tmp_path, url, bound, env)
    wait_until(
        lambda: (
            sample(scrape(service.extra["metrics_url"]), "analytics_grpc_serving_model_staleness_seconds") >= 0
            and sample(scrape(service.extra["metrics_url"]), "analytics_grpc_serving_model_workflows") > 0
        ),
        "the serving model to load",
    )
    return service


def lookups_in_clickhouse(service) -> float:
    text = scrape(service.extra["metrics_url"])
    return sum(
        sample(text, "analytics_clickhouse_query_seconds_count", query=name, outcome="ok")
        for name in ("user_totals", "workflow_totals")
    )


def test_the_serving_model_answers_exactly_from_memory_and_within_its_bound(analytics_db, small, tmp_path):
    # A roomier bound, so that a poll slowed by a busy machine does not send these lookups to ClickHouse.
    bound = 3.0
    service = start_served(tmp_path, analytics_db.url, bound)
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            before = lookups_in_clickhouse(service)
            for method, request, expected in mixed_requests(small):
                assert answer_of(stub, method, request) == expected, (method, request)
            assert lookups_in_clickhouse(service) == before, "answered by ClickHouse, not by the model"

            # New events, for a known user and for a user the model has never seen.
            more = datasets.generate(seed=62, users=2, workflows_per_user=2, jobs_per_workflow=3)
            deliver(analytics_db, more.messages)
            landed = time.monotonic()
            time.sleep(max(0.0, landed + bound + 0.05 - time.monotonic()))
            # Past the bound, every answer counts them: from a fresher model, or from ClickHouse.
            for method, request, expected in mixed_requests(more) + mixed_requests(small):
                assert answer_of(stub, method, request) == expected, (method, request)
    finally:
        assert service.stop() == 0, service.log()


def test_a_model_whose_feed_is_behind_is_never_used(analytics_db, small, relay, tmp_path):
    service = start_served(tmp_path, relay.url)
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            user = sorted(small.expected.users)[0]
            assert answer_of(stub, "GetUserAnalytics", pb.GetUserAnalyticsRequest(user_id=user)) == (
                small.expected.user(user)
            )
            relay.hold()  # the feed's next read waits in ClickHouse: the model ages
            wait_until(lambda: relay.request_seen.is_set(), "the feed to read")
            more = datasets.generate(seed=63, users=1, workflows_per_user=2, jobs_per_workflow=3)
            deliver(analytics_db, more.messages)
            newcomer = more.expected.users[0]
            time.sleep(BOUND + 0.1)
            # Past the bound the model does not answer, even what it knows: the lookups go to
            # ClickHouse (held here), so they miss their deadline rather than answer from old state.
            for request in (
                pb.GetUserAnalyticsRequest(user_id=user),
                pb.GetUserAnalyticsRequest(user_id=newcomer),
            ):
                assert answer_of(stub, "GetUserAnalytics", request, timeout=0.5) == grpc.StatusCode.DEADLINE_EXCEEDED
            relay.release()
            answer = answer_of(stub, "GetUserAnalytics", pb.GetUserAnalyticsRequest(user_id=newcomer))
            assert answer == more.expected.user(newcomer), service.log()[-10_000:]
    finally:
        relay.release()
        assert service.stop() == 0, service.log()


def start_limited(tmp_path, url: str, limit: int):
    return launch_served(tmp_path, url, env={"ANALYTICS_GRPC_SERVING_MAX_WORKFLOWS": str(limit)})


def assert_answered_by_clickhouse(service, dataset) -> None:
    with service.channel() as channel:
        stub = service.stub(channel)
        before = lookups_in_clickhouse(service)
        cases = mixed_requests(dataset)
        for method, request, expected in cases:
            assert answer_of(stub, method, request) == expected, (method, request)
        assert lookups_in_clickhouse(service) - before == len(cases)
    assert sample(scrape(service.extra["metrics_url"]), "analytics_grpc_serving_model_workflows") == 0


def test_a_model_that_would_start_beyond_its_limit_turns_itself_off(analytics_db, small, tmp_path):
    """More workflows than ANALYTICS_GRPC_SERVING_MAX_WORKFLOWS: no model, exact answers from ClickHouse."""
    service = start_limited(tmp_path, analytics_db.url, 5)
    try:
        wait_until(lambda: "the serving model is off" in service.log(), "the model to turn itself off")
        assert "ClickHouse holds more than 5 workflows" in service.log()
        assert_answered_by_clickhouse(service, small)
    finally:
        assert service.stop() == 0, service.log()


def test_a_model_that_grows_beyond_its_limit_turns_itself_off(analytics_db, small, tmp_path):
    [[held]] = [
        list(row.values())
        for row in query(analytics_db, "select uniqExact(user_id, workflow_id) from analytics.workflow_totals")
    ]
    service = start_limited(tmp_path, analytics_db.url, int(held) + 1)
    try:
        wait_until(
            lambda: sample(scrape(service.extra["metrics_url"]), "analytics_grpc_serving_model_workflows") > 0,
            "the model to load",
        )
        more = datasets.generate(seed=64, users=2, workflows_per_user=1, jobs_per_workflow=2)
        deliver(analytics_db, more.messages)
        wait_until(lambda: "the serving model is off" in service.log(), "the model to turn itself off")
        assert f"new workflows took it past {int(held) + 1}" in service.log()
        assert_answered_by_clickhouse(service, more)
    finally:
        assert service.stop() == 0, service.log()
