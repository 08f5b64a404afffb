"""`analytics up` serves the gRPC AnalyticsService on its own chDB, as the seed's grpcurl call expects.

The stack runs as a process on free ports (it builds the schema itself); events go in over its
ClickHouse HTTP interface, answers come out of the gRPC port.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from analytics_proto import analytics_pb2 as pb
from tests import datasets, embedded_server, log_datasets
from tests.grpc_server import (
    NOT_SERVING,
    SERVING,
    call_by_reflection,
    health_status,
    listed_services,
    sample,
    scrape,
    start_up,
    wait_until,
)
from tests.intake import HTTP, copied_rows, deliver, execute
from tests.test_grpc_service_go_client import EXPECTED_CODES, go_client

pytestmark = pytest.mark.long_file(46)  # seconds of a worker, measured: run first (tests/scheduling.py)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("up") / "data"
    service = start_up(data_dir, env={"ANALYTICS_GRPC_DRAIN_SECONDS": "5"})
    service.extra["data_dir"] = data_dir
    yield service
    service.stop(signal.SIGKILL)  # the last test stops it properly; this only cleans up after a failure


@pytest.fixture(scope="module")
def loaded(stack):
    dataset = datasets.generate(seed=61, users=4, workflows_per_user=3)
    deliver(SimpleNamespace(url=stack.extra["url"]), dataset.messages)
    return dataset


def user_totals(stub, user: str) -> tuple[int, int, int, int]:
    """GetUserAnalytics's four numbers, in the order the datasets' expectations give them."""
    answer = stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=30)
    return (answer.total_workflows, answer.total_jobs, answer.total_joblogs, answer.total_job_execution_duration)


def seed_json(workflows: int, jobs: int, joblogs: int, seconds: int) -> dict:
    """GetUserAnalytics as grpcurl prints it: uint64 fields as strings."""
    return {
        "total_workflows": workflows,
        "total_jobs": str(jobs),
        "total_joblogs": str(joblogs),
        "total_job_execution_duration": str(seconds),
    }


def test_the_seeds_grpcurl_call_answers_for_every_user(stack, loaded):
    """grpcurl -plaintext -d '{"user_id": ...}' HOST:PORT analytics.AnalyticsService/GetUserAnalytics"""
    for user in loaded.expected.users:
        answer = call_by_reflection(
            stack.target, "analytics.AnalyticsService/GetUserAnalytics", json.dumps({"user_id": user})
        )
        assert answer == seed_json(*loaded.expected.user(user)), user


def test_grpcurl_itself_when_installed(stack, loaded):
    grpcurl = shutil.which("grpcurl")
    if grpcurl is None:
        pytest.skip(
            "grpcurl is not installed (./dev test builds it when Go is here); "
            "the reflection client above makes the same call"
        )
    user = loaded.expected.users[0]
    listed = subprocess.run([grpcurl, "-plaintext", stack.target, "list"], capture_output=True, text=True, timeout=30)
    assert "analytics.AnalyticsService" in listed.stdout.split()
    called = subprocess.run(
        [
            grpcurl,
            "-plaintext",
            "-d",
            json.dumps({"user_id": user}),
            stack.target,
            "analytics.AnalyticsService/GetUserAnalytics",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout) == seed_json(*loaded.expected.user(user))


def test_the_readmes_job_log_calls_with_grpcurl(stack):
    """README's grpcurl examples of the job-log calls, on the stack's own chDB."""
    grpcurl = shutil.which("grpcurl")
    if grpcurl is None:
        pytest.skip("grpcurl is not installed (./dev test builds it when Go is here)")
    logs = log_datasets.generate_logs(seed=62, users=1, jobs_per_user=1, lines=(20, 40))
    [job] = logs.jobs
    deliver(SimpleNamespace(url=stack.extra["url"]), logs.messages)
    ended = log_datasets.job_event(job, "completed", job.lines[-1].time, f"{logs.prefix}-end")
    deliver(SimpleNamespace(url=stack.extra["url"]), {"jobs": [ended]})

    def grpcurl_json(method: str, body: dict | None = None) -> list[dict]:
        data = ["-d", json.dumps(body)] if body is not None else []
        called = subprocess.run(
            [grpcurl, "-plaintext", *data, stack.target, f"analytics.AnalyticsService/{method}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert called.returncode == 0, called.stderr
        return [json.loads(part) for part in called.stdout.replace("}\n{", "}\0{").split("\0")]

    [page] = grpcurl_json("ListJobLogs", {**job.ids, "contains": "worker", "page_size": 100})
    assert [line["message"] for line in page.get("lines", [])] == [
        line.message for line in job.lines if "worker" in line.message.lower()
    ]
    tailed = grpcurl_json("StreamJobLogs", {**job.ids, "stream": "LOG_STREAM_STDERR"})
    assert [line["event_id"] for line in tailed] == [line.event_id for line in job.lines if line.stream == "stderr"]
    [stats] = grpcurl_json("GetStorageStats")
    assert {"job_log_events", "job_log_totals", "seen_keys"} <= {table["table"] for table in stats["tables"]}
    assert stats["log_retention"]["log_retention_hours"] == 720


def test_a_live_tail_on_the_stacks_own_chdb(stack):
    """The shared poller asks the in-process chDB: a line that lands reaches the tail, the job's end ends it."""
    logs = log_datasets.generate_logs(seed=63, users=1, jobs_per_user=1, lines=(3, 4))
    [job] = logs.jobs
    http = SimpleNamespace(url=stack.extra["url"])
    deliver(http, logs.messages)
    with stack.channel() as channel:
        tail = stack.stub(channel).StreamJobLogs(pb.StreamJobLogsRequest(**job.ids), timeout=120)
        history = [next(tail) for _ in job.lines]
        assert [line.event_id for line in history] == [line.event_id for line in job.lines]
        landed = log_datasets.log_event(job, f"{logs.prefix}-live", job.lines[-1].time, sequence=99, message="live")
        deliver(http, {"job_logs": [landed]})
        assert next(tail).message == "live"
        ended = log_datasets.job_event(job, "cancelled", job.lines[-1].time, f"{logs.prefix}-end")
        deliver(http, {"jobs": [ended]})
        assert list(tail) == []  # the stream ends (OK) once the job's end has landed


def test_every_workflow_through_the_generated_stub(stack, loaded):
    with stack.channel() as channel:
        stub = stack.stub(channel)
        for user, workflow in sorted(loaded.expected.workflows):
            answer = stub.GetWorkflowAnalytics(
                pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=workflow), timeout=30
            )
            assert (answer.total_jobs, answer.total_joblogs, answer.total_job_execution_duration) == (
                loaded.expected.workflow(user, workflow)
            )
        details = stub.GetUserAnalyticsDetails(
            pb.GetUserAnalyticsDetailsRequest(user_id=loaded.expected.users[0]), timeout=30
        )
        assert details.summary.total_jobs == loaded.expected.user(loaded.expected.users[0])[1]


def test_the_scheduler_go_client_on_the_stack(stack, loaded):
    """grpc-go with stubs generated from the proto, as the scheduler calls the service, on `up`'s
    in-process backend and serving model (tests/test_grpc_service_go_client.py checks more of its
    answers over HTTP)."""
    user, other = loaded.expected.users[:2]
    own = sorted(workflow for owner, workflow in loaded.expected.workflows if owner == user)
    foreign = next(workflow for owner, workflow in loaded.expected.workflows if owner == other)
    report = go_client(stack, user, other, [*own, foreign])
    assert report["health"] == "SERVING"
    totals = (report["total_workflows"], report["total_jobs"], report["total_joblogs"])
    assert (*totals, report["total_job_execution_duration"]) == loaded.expected.user(user)
    for compared, workflow in zip(report["compared"], own, strict=False):
        got = (compared["total_jobs"], compared["total_joblogs"], compared["total_job_execution_duration"])
        assert compared["workflow_id"] == workflow and got == loaded.expected.workflow(user, workflow)
    assert report["compared"][-1]["error"] == "NotFound" and sorted(report["listed"]) == own
    assert report["codes"] == EXPECTED_CODES


def test_health_and_reflection(stack):
    with stack.channel() as channel:
        assert health_status(channel) == SERVING
        assert health_status(channel, "analytics.AnalyticsService") == SERVING
    assert "analytics.AnalyticsService" in listed_services(stack.target)


WORKFLOW_LOOKUPS = ("user_totals", "workflow_totals")


def lookups_asked_of_clickhouse(stack) -> float:
    text = scrape(stack.extra["url"] + "/metrics")
    return sum(sample(text, "analytics_clickhouse_query_seconds_count", query=name) for name in WORKFLOW_LOOKUPS)


def test_lookups_read_their_writes_from_the_serving_model(stack, loaded):
    """On by default in `up`: an event whose insert has returned is in the very next answer."""
    http = SimpleNamespace(url=stack.extra["url"])
    loaded_model = "analytics_grpc_serving_model_staleness_seconds"  # -1 until the model has loaded
    wait_until(lambda: sample(scrape(http.url + "/metrics"), loaded_model) >= 0, "the serving model to load")
    before = lookups_asked_of_clickhouse(stack)
    rounds = 20
    with stack.channel() as channel:
        stub = stack.stub(channel)
        for n in range(rounds):
            more = datasets.generate(seed=700 + n, users=1, workflows_per_user=1, jobs_per_workflow=2)
            [user] = more.expected.users
            # Every other round as asynchronous inserts, which answer once their batch is in (each
            # batch waits the busy timeout for more: 50 ms instead of 200 keeps the test short).
            queued = {"async_insert": 1, "wait_for_async_insert": 1, "async_insert_busy_timeout_ms": 50}
            deliver(http, more.messages, **(queued if n % 2 else {}))
            # No waiting and no retry: the inserts have returned, so the answers count them.
            assert user_totals(stub, user) == more.expected.user(user)
            series = stub.GetAnalyticsTimeSeries(pb.GetAnalyticsTimeSeriesRequest(user_id=user), timeout=30)
            by_day = [(point.summary.total_jobs, point.summary.total_joblogs) for point in series.points]
            assert tuple(map(sum, zip(*by_day, strict=True))) == more.expected.user(user)[1:3]
            for _, workflow in sorted(more.expected.workflows):
                request = pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=workflow)
                answer = stub.GetWorkflowAnalytics(request, timeout=30)
                assert (answer.total_jobs, answer.total_joblogs, answer.total_job_execution_duration) == (
                    more.expected.workflow(user, workflow)
                )
    # The model answered (a lookup goes to ClickHouse only when the feed is slower than its bound).
    assert lookups_asked_of_clickhouse(stack) - before < rounds / 2


def test_a_write_no_insert_announces_is_never_missed(stack, loaded):
    """A DELETE changes totals without a view's rows: the model reads everything again, ClickHouse answers meanwhile."""
    http = SimpleNamespace(url=stack.extra["url"])
    more = datasets.generate(seed=720, users=1, workflows_per_user=2, jobs_per_workflow=2)
    [user] = more.expected.users
    deliver(http, more.messages)
    with stack.channel() as channel:
        stub = stack.stub(channel)
        request = pb.GetUserAnalyticsRequest(user_id=user)
        assert stub.GetUserAnalytics(request, timeout=30).total_jobs == more.expected.user(user)[1]
        execute(http, f"DELETE FROM analytics.workflow_totals WHERE user_id = '{user}'")
        with pytest.raises(grpc.RpcError) as gone:
            stub.GetUserAnalytics(request, timeout=30)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND


@contextlib.contextmanager
def a_mutation_held_back(http, table: str, mutation: str) -> Iterator[None]:
    """`ALTER TABLE <table> <mutation>` with the table's merges stopped, so the mutation waits until
    the block ends; sent with mutations_sync=0, the statement returns at once (chDB's own default
    waits for it). The model reads everything again meanwhile, the mutation still waiting."""
    execute(http, f"SYSTEM STOP MERGES {table}")
    try:
        altered = HTTP.request("POST", f"{http.url}/?mutations_sync=0", body=f"ALTER TABLE {table} {mutation}".encode())
        assert altered.status == 200, altered.data
        time.sleep(0.5)
        yield
    finally:
        execute(http, f"SYSTEM START MERGES {table}")


def test_a_mutation_still_running_is_never_answered_from_memory(stack, loaded):
    """ALTER ... UPDATE returns before its mutation runs: the model must not keep what it read meanwhile."""
    http = SimpleNamespace(url=stack.extra["url"])
    more = datasets.generate(seed=730, users=1, workflows_per_user=1, jobs_per_workflow=3)
    [user] = more.expected.users
    deliver(http, more.messages)
    request = pb.GetUserAnalyticsRequest(user_id=user)
    with stack.channel() as channel:
        stub = stack.stub(channel)
        assert stub.GetUserAnalytics(request, timeout=30).total_jobs == more.expected.user(user)[1]
        with a_mutation_held_back(http, "analytics.workflow_totals", f"UPDATE jobs = 0 WHERE user_id = '{user}'"):
            assert stub.GetUserAnalytics(request, timeout=30).total_jobs == more.expected.user(user)[1]
        wait_until(lambda: stub.GetUserAnalytics(request, timeout=30).total_jobs == 0, "the mutation's numbers", 30)


def test_a_mutation_of_the_digests_still_running_is_never_answered_from_memory(stack, loaded):
    """The same for job_duration_daily, whose digests give a user's percentiles in the model."""
    http = SimpleNamespace(url=stack.extra["url"])
    more = datasets.generate(seed=731, users=1, workflows_per_user=1, jobs_per_workflow=3)
    [user] = more.expected.users
    deliver(http, more.messages)
    request = pb.GetUserAnalyticsDetailsRequest(user_id=user)
    with stack.channel() as channel:
        stub = stack.stub(channel)

        def percentiles():
            summary = stub.GetUserAnalyticsDetails(request, timeout=30).summary
            return summary.duration_percentiles.p99 if summary.HasField("duration_percentiles") else None

        stored = percentiles()
        assert stored is not None
        with copied_rows(http, "job_duration_daily", f"user_id = '{user}'") as saved:
            with a_mutation_held_back(http, "analytics.job_duration_daily", f"DELETE WHERE user_id = '{user}'"):
                assert percentiles() == stored
            wait_until(lambda: percentiles() is None, "the mutation's digests gone", 30)
            # The user's digests back, as reconciliation would insert them: announced, so read again.
            execute(http, f"INSERT INTO analytics.job_duration_daily SELECT * FROM {saved}")
            assert percentiles() == stored


def test_sigterm_sets_not_serving_and_stops_the_stack_cleanly(stack):
    with stack.channel() as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
        assert next(watch).status == SERVING
        stack.process.send_signal(signal.SIGTERM)
        assert next(watch).status == NOT_SERVING
        watch.cancel()
    # uvicorn re-raises SIGTERM once it has shut down, so the exit status may say "terminated by SIGTERM".
    assert stack.process.wait(120) in (0, -signal.SIGTERM), stack.log()
    output = stack.log()
    assert "gRPC AnalyticsService stopped" in output
    assert output.index("gRPC AnalyticsService stopped") < output.index("closed chDB")


def test_up_starts_on_data_that_fails_a_dbt_test_and_names_the_test(stack, loaded):
    """The stack is what takes events in and repairs the data: a failing data test must not keep it down."""
    assert stack.process.poll() is not None  # stopped by the test before
    data_dir = stack.extra["data_dir"]
    [user, *_] = sorted(loaded.expected.users)
    clickhouse = embedded_server.start(data_dir / "clickhouse")  # the same data, without the stack
    try:
        # A replay that counted the user's days twice: workflow_daily no longer matches its raw history.
        execute(
            clickhouse,
            f"INSERT INTO analytics.workflow_daily SELECT * FROM analytics.workflow_daily WHERE user_id = '{user}'",
        )
    finally:
        assert clickhouse.stop() in (0, -signal.SIGTERM)
    again = start_up(data_dir)
    try:
        [warning] = [line for line in again.log().splitlines() if "the data fails" in line]
        assert "workflow_daily_matches_raw_history" in warning  # and the mutated totals' test, from above
        more = datasets.generate(seed=790, users=1, workflows_per_user=2, jobs_per_workflow=2)
        [newcomer] = more.expected.users
        deliver(SimpleNamespace(url=again.extra["url"]), more.messages)
        with again.channel() as channel:
            assert user_totals(again.stub(channel), newcomer) == more.expected.user(newcomer)
    finally:
        again.stop()
