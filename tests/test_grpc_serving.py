"""Serving speed without giving up exactness: coalesced lookups, admission control, the serving model.

All over real gRPC channels to `analytics grpc`, reading the embedded ClickHouse; a held TCP
relay between them keeps ClickHouse's answers back for as long as a test needs, without timing.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from core.settings.composed import Settings
from operations.backfill import rebuild_days
from tests import datasets
from tests.embedded_server import free_port
from tests.grpc_server import HeldRelay, sample, scrape, start_grpc, wait_until
from tests.intake import copied_rows, deliver, execute, query, user_percentiles

pytestmark = pytest.mark.long_file(42)  # seconds of a worker, measured: run first (tests/scheduling.py)

BOUND = 1.0  # the serving model's staleness bound in these tests, seconds


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
    service = start_grpc(tmp_path, "--clickhouse-url", relay.url, "--metrics-port", str(metrics_port))
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    cases = mixed_requests(small) * 2
    try:
        with service.channel() as channel, ThreadPoolExecutor(len(cases)) as pool:
            stub = service.stub(channel)
            relay.hold()
            futures = [pool.submit(answer_of, stub, method, request) for method, request, _ in cases]
            # Every call has reached the service (two batches are held in ClickHouse, the rest wait).
            wait_until(
                lambda: (
                    sum(
                        sample(scrape(metrics_url), "analytics_grpc_requests_total", grpc_method=method)
                        for method in ("GetUserAnalytics", "GetWorkflowAnalytics")
                    )
                    >= len(cases)
                ),
                "every call to arrive",
            )
            time.sleep(0.2)  # let the last arrivals queue behind the held batches
            relay.release()
            answers = [future.result(timeout=60) for future in futures]
        for (method, request, expected), got in zip(cases, answers, strict=True):
            assert got == expected, (method, request)
        text = scrape(metrics_url)
        batches = sample(text, "analytics_grpc_lookup_batch_keys_count")
        keys = sample(text, "analytics_grpc_lookup_batch_keys_sum")
        assert keys >= len({(m, r.SerializeToString()) for m, r, _ in cases})
        assert batches < len(cases) / 2, "the held lookups were not coalesced"
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


def start_served(tmp_path, url: str, bound: float = BOUND):
    service = launch_served(tmp_path, url, bound)
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


def test_digests_inserted_without_new_counters_reach_a_users_percentiles_within_the_bound(analytics_db, tmp_path):
    """Reconciliation replaces a day's digests (delete, then insert) without touching the counters:
    the insert announces its keys, and the model re-reads the user's percentiles."""
    more = datasets.generate(seed=63, users=1, workflows_per_user=2, jobs_per_workflow=4)
    deliver(analytics_db, more.messages)
    [user] = more.expected.users
    merged = user_percentiles(analytics_db, user)
    with copied_rows(analytics_db, "job_duration_daily", f"user_id = '{user}'") as saved:
        execute(analytics_db, f"DELETE FROM analytics.job_duration_daily WHERE user_id = '{user}'")
        bound = 3.0
        service = start_served(tmp_path, analytics_db.url, bound)
        try:
            with service.channel() as channel:
                stub = service.stub(channel)
                request = pb.GetUserAnalyticsDetailsRequest(user_id=user)
                before = queries_run(service, *STATEMENTS)
                summary = stub.GetUserAnalyticsDetails(request, timeout=30).summary
                assert summary.total_jobs == more.expected.user(user)[1]
                assert not summary.HasField("duration_percentiles")

                execute(analytics_db, f"INSERT INTO analytics.job_duration_daily SELECT * FROM {saved}")
                time.sleep(bound + 0.05)
                got = stub.GetUserAnalyticsDetails(request, timeout=30).summary.duration_percentiles
                assert (got.p50, got.p90, got.p95, got.p99) == pytest.approx(merged, rel=1e-6)
                assert queries_run(service, *STATEMENTS) == before, "answered by ClickHouse, not by the model"
        finally:
            assert service.stop() == 0, service.log()


def test_digests_a_rebuild_deletes_without_inserting_others_leave_a_users_percentiles(analytics_db, tmp_path):
    """Reconciliation deletes a day's digests and inserts the rebuilt ones: a user whose digests of
    the day are gone (none rebuilt) is announced by the rebuild itself, as no insert names it."""
    more = datasets.generate(seed=64, users=1, workflows_per_user=2, jobs_per_workflow=4)
    deliver(analytics_db, more.messages)
    [user] = more.expected.users
    workflow = sorted(workflow for owner, workflow in more.expected.workflows if owner == user)[0]
    true = user_percentiles(analytics_db, user)
    bound = 3.0
    service = start_served(tmp_path, analytics_db.url, bound)
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            request = pb.GetUserAnalyticsDetailsRequest(user_id=user)

            def p99() -> float:
                return stub.GetUserAnalyticsDetails(request, timeout=30).summary.duration_percentiles.p99

            # A day no raw event has: a digest there is wrong, and rebuilding the day removes it.
            wrong_day = dt.date(2001, 2, 3)
            execute(
                analytics_db,
                f"""INSERT INTO analytics.job_duration_daily SELECT '{user}', '{workflow}', toDate('{wrong_day}'),
                    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(toFloat64(86400 * 30))""",
            )
            time.sleep(bound + 0.05)
            assert p99() > true[3]  # the model has read the wrong digest (the insert announced it)

            settings = Settings(clickhouse_http_port=analytics_db.port, data_dir=tmp_path / "state")
            rebuild_days(settings, [wrong_day])
            before = queries_run(service, *STATEMENTS)
            time.sleep(bound + 0.05)
            assert p99() == pytest.approx(true[3], rel=1e-6)
            assert queries_run(service, *STATEMENTS) == before, "answered by ClickHouse, not by the model"
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
            assert answer_of(stub, "GetUserAnalytics", pb.GetUserAnalyticsRequest(user_id=newcomer)) == (
                more.expected.user(newcomer)
            )
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


# Every statement the service's calls may run (server/queries.py), by its name in the metrics.
STATEMENTS = ("user_totals", "workflow_totals", "summary", "percentiles", "known", "time_series", "list_workflows")


def queries_run(service, *names: str) -> float:
    text = scrape(service.extra["metrics_url"])
    return sum(sample(text, "analytics_clickhouse_query_seconds_count", query=name, outcome="ok") for name in names)


def answers(stub, calls: list[tuple[str, object]]) -> list:
    """Each call's response, or its status code when it fails."""
    found = []
    for method, request in calls:
        try:
            found.append(getattr(stub, method)(request, timeout=30))
        except grpc.RpcError as error:
            found.append(error.code())
    return found


def listing(stub, request: pb.ListWorkflowAnalyticsRequest) -> list:
    """Every page of a listing, followed to its end (or the status code of a listing that fails)."""
    found = []
    while True:
        try:
            page = stub.ListWorkflowAnalytics(request, timeout=30)
        except grpc.RpcError as error:
            return [*found, error.code()]
        found.append(page)
        if not page.next_page_token:
            return found
        following = pb.ListWorkflowAnalyticsRequest()
        following.CopyFrom(request)
        following.page_token = page.next_page_token
        request = following


def test_details_and_listings_over_all_time_from_the_model_are_the_statements_answers(analytics_db, small, tmp_path):
    # This module's users and the shared database's 30 with the most workflows (the other suites'
    # data sets too: the longest listings), each kind, each order.
    users = sorted(small.expected.users) + [
        row["user_id"]
        for row in query(
            analytics_db,
            "select user_id from analytics.workflow_totals group by user_id"
            " order by uniqExact(workflow_id) desc, user_id limit 30",
        )
        if row["user_id"] not in small.expected.users
    ]
    kinds = [row["kind"] for row in query(analytics_db, "select distinct kind from analytics.workflow_totals")]
    workflows = query(analytics_db, "select distinct user_id, workflow_id from analytics.workflow_totals limit 60")
    calls: list[tuple[str, object]] = []
    for user in [*users, "nobody-here"]:
        for kind in ["", *kinds, "NO_SUCH_KIND"]:
            calls.append(("GetUserAnalyticsDetails", pb.GetUserAnalyticsDetailsRequest(user_id=user, kind=kind)))
    for row in [*workflows, {"user_id": users[0], "workflow_id": "no-such-workflow"}]:
        request = pb.GetWorkflowAnalyticsDetailsRequest(user_id=row["user_id"], workflow_id=row["workflow_id"])
        calls.append(("GetWorkflowAnalyticsDetails", request))
    listings = [
        pb.ListWorkflowAnalyticsRequest(user_id=user, order_by=order, ascending=ascending, kind=kind, page_size=3)
        for user in [*users[:12], "nobody-here"]
        for order in (pb.WORKFLOW_ORDER_JOBS, pb.WORKFLOW_ORDER_JOB_EXECUTION_DURATION, pb.WORKFLOW_ORDER_JOBLOGS)
        for ascending in (False, True)
        for kind in ("", max(kinds))
    ]

    (tmp_path / "served").mkdir()
    (tmp_path / "statements").mkdir()
    served = start_served(tmp_path / "served", analytics_db.url, bound=60.0)  # nothing changes meanwhile
    statements = launch_served(tmp_path / "statements", analytics_db.url, bound=0)  # 0: no model
    try:
        with served.channel() as served_channel, statements.channel() as statements_channel:
            from_model, from_statements = served.stub(served_channel), statements.stub(statements_channel)
            for call, got, want in zip(calls, answers(from_model, calls), answers(from_statements, calls), strict=True):
                assert got == want, (call, str(got), str(want))
            for request in listings:
                assert listing(from_model, request) == listing(from_statements, request), request
            # The model answered: no counters or listing statement ran there, only the digests' reads
            # of a workflow or a kind; a user's details (all kinds) cost no statement at all.
            assert queries_run(served, "summary", "list_workflows", "known") == 0
            assert queries_run(served, "percentiles") > 0
            before = queries_run(served, *STATEMENTS)
            whole_users = [call for call in calls if call[0] == "GetUserAnalyticsDetails" and not call[1].kind]
            assert answers(from_model, whole_users) == answers(from_statements, whole_users)
            assert queries_run(served, *STATEMENTS) == before
        assert queries_run(statements, "summary") > 0 and queries_run(statements, "list_workflows") > 0
    finally:
        assert served.stop() == 0, served.log()
        assert statements.stop() == 0, statements.log()
