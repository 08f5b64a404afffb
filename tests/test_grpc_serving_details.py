"""The serving model's extended answers: details, listings and time series as ClickHouse's own
statements give them, and a user's duration percentiles kept fresh as digests come and go.

Over real gRPC channels to `analytics grpc` with the model on, reading the embedded ClickHouse.
"""

from __future__ import annotations

import datetime as dt
import time

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from core.clickhouse.backend import HttpBackend
from operations.backfill import rebuild_days
from server.queries import Queries, Scope
from server.serving import ServingModel
from tests import datasets
from tests.grpc_server import sample, scrape
from tests.intake import copied_rows, deliver, execute, query, user_percentiles
from tests.test_grpc_serving import launch_served, small, start_served  # noqa: F401 - the fixture

pytestmark = pytest.mark.long_file(50)  # seconds of a worker, measured: run first (tests/scheduling.py)


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


def series_requests(db, users: list[str], kind: str, workflow: str) -> tuple[list, list]:
    """GetAnalyticsTimeSeries calls: those the model answers (a user's, over all time or over days
    that cut no bucket in two), and the others (a workflow's, a kind's, days that cut a bucket)."""
    [row] = query(db, "select min(day) as first, max(day) as last from analytics.workflow_daily")
    first, last = dt.date.fromisoformat(row["first"]), dt.date.fromisoformat(row["last"])
    monday = first - dt.timedelta(days=first.weekday())
    whole_weeks = (monday, monday + dt.timedelta(days=13))
    month_end = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    ranges = {
        pb.GRANULARITY_DAY: [(first + dt.timedelta(days=1), last - dt.timedelta(days=1)), (None, first)],
        pb.GRANULARITY_WEEK: [whole_weeks, (None, whole_weeks[1]), (monday + dt.timedelta(days=7), None)],
        pb.GRANULARITY_MONTH: [(first.replace(day=1), month_end), (first.replace(day=1), None)],
    }
    cut = {
        pb.GRANULARITY_WEEK: (monday + dt.timedelta(days=1), monday + dt.timedelta(days=9)),
        pb.GRANULARITY_MONTH: (first.replace(day=2), month_end),
    }

    def request(user: str, granularity, days=None, **scope) -> tuple[str, object]:
        dates = (
            {}
            if days is None
            else {"date_range": pb.DateRange(start_date=str(days[0] or ""), end_date=str(days[1] or ""))}
        )
        return "GetAnalyticsTimeSeries", pb.GetAnalyticsTimeSeriesRequest(
            user_id=user, granularity=granularity, **dates, **scope
        )

    whole = []
    for user in [*users, "nobody-here"]:
        for granularity in (pb.GRANULARITY_UNSPECIFIED, pb.GRANULARITY_DAY, pb.GRANULARITY_WEEK, pb.GRANULARITY_MONTH):
            whole.append(request(user, granularity))
            whole += [request(user, granularity, days) for days in ranges.get(granularity, [])]
    others = [request(user, granularity, days) for user in users[:4] for granularity, days in cut.items()]
    others += [request(user, pb.GRANULARITY_WEEK, kind=kind) for user in users[:4]]
    others.append(request(users[0], pb.GRANULARITY_DAY, workflow_id=workflow))
    return whole, others


def test_every_users_series_read_in_parts_are_the_statements_answers(analytics_db, small):
    """Read in parts of users by a hash of their ids (a part here of about 10 buckets), every user's
    series is whole: the model's buckets are the statement's, for each user and granularity."""
    backend = HttpBackend(analytics_db.url)
    try:
        model = ServingModel(backend, max_staleness=60, series_part=10)
        model.load()
        queries = Queries(backend)
        users = [row["user_id"] for row in query(analytics_db, "select distinct user_id from analytics.workflow_daily")]
        assert model.series.points > 30 and len(users) >= 4  # four parts or more
        for user in users:
            for granularity in ("day", "week", "month"):
                got = model.time_series(user, granularity, Scope(user).period, 30)
                assert got == queries.time_series(Scope(user), granularity, 30), (user, granularity)
    finally:
        backend.close()


def test_details_listings_and_series_from_the_model_are_the_statements_answers(analytics_db, small, tmp_path):
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
    kinds = [
        row["kind"]
        for row in query(analytics_db, "select distinct tupleElement(kind, 2) as kind from analytics.workflow_totals")
    ]
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

    whole_series, other_series = series_requests(analytics_db, users[:12], max(kinds), workflows[0]["workflow_id"])
    calls += whole_series + other_series

    (tmp_path / "served").mkdir()
    (tmp_path / "statements").mkdir()
    # Every bucket of every granularity the daily tables have, as many as the model may hold: it
    # counts them before it reads them, and holds them all.
    [held] = query(
        analytics_db,
        "select uniqExact(user_id, day) + uniqExact(user_id, toMonday(day))"
        " + uniqExact(user_id, toStartOfMonth(day)) as buckets from analytics.workflow_daily",
    )
    bounded = {"ANALYTICS_GRPC_SERVING_MAX_SERIES_POINTS": str(held["buckets"])}
    served = start_served(tmp_path / "served", analytics_db.url, bound=60.0, env=bounded)  # nothing changes meanwhile
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
            # A user's time series cost none; a workflow's, a kind's, or over days that cut a bucket in
            # two, the statement.
            assert queries_run(served, "time_series") == len(other_series)
            buckets = sample(scrape(served.extra["metrics_url"]), "analytics_grpc_serving_model_series_buckets")
            assert buckets == held["buckets"]
            before = queries_run(served, *STATEMENTS)
            whole_users = [call for call in calls if call[0] == "GetUserAnalyticsDetails" and not call[1].kind]
            assert answers(from_model, whole_users) == answers(from_statements, whole_users)
            assert queries_run(served, *STATEMENTS) == before
        assert queries_run(statements, "summary") > 0 and queries_run(statements, "list_workflows") > 0
    finally:
        assert served.stop() == 0, served.log()
        assert statements.stop() == 0, statements.log()


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

            settings = analytics_db.settings()
            rebuild_days(settings, [wrong_day])
            before = queries_run(service, *STATEMENTS)
            time.sleep(bound + 0.05)
            assert p99() == pytest.approx(true[3], rel=1e-6)
            assert queries_run(service, *STATEMENTS) == before, "answered by ClickHouse, not by the model"
    finally:
        assert service.stop() == 0, service.log()


def test_a_rebuild_that_moves_counters_between_days_reaches_a_users_time_series(analytics_db, tmp_path):
    """Reconciliation corrects workflow_daily by delta rows and deletes what the raw history lacks,
    neither announced by an insert into workflow_totals when the workflow's totals were right: the
    rebuild announces the days' keys itself, and the model re-reads the user's time series."""
    more = datasets.generate(seed=65, users=1, workflows_per_user=1, jobs_per_workflow=3)
    deliver(analytics_db, more.messages)
    user, workflow = sorted(more.expected.workflows)[0]
    kind = more.expected.kinds[user, workflow]
    # Jobs counted on two days no raw event has, +2 and -2: the totals stay right.
    wrong_days = [dt.date(2001, 2, 3), dt.date(2001, 2, 4)]
    for day, jobs in zip(wrong_days, (2, -2), strict=True):
        execute(
            analytics_db,
            f"INSERT INTO analytics.workflow_daily (user_id, workflow_id, day, kind, jobs)"
            f" VALUES ('{user}', '{workflow}', '{day}', (0, '{kind}'), {jobs})",
        )
    # A row of zeros into workflow_totals announces the key, so the model reads the wrong days too.
    execute(
        analytics_db,
        f"INSERT INTO analytics.workflow_totals (user_id, workflow_id, kind)"
        f" VALUES ('{user}', '{workflow}', (0, '{kind}'))",
    )
    bound = 3.0
    service = start_served(tmp_path, analytics_db.url, bound)
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            request = pb.GetAnalyticsTimeSeriesRequest(user_id=user, granularity=pb.GRANULARITY_DAY)

            def days() -> list[str]:
                return [point.bucket_start for point in stub.GetAnalyticsTimeSeries(request, timeout=30).points]

            assert {str(day) for day in wrong_days} <= set(days())
            settings = analytics_db.settings()
            rebuild_days(settings, wrong_days)
            before = queries_run(service, *STATEMENTS)
            time.sleep(bound + 0.05)
            assert not {str(day) for day in wrong_days} & set(days())
            assert queries_run(service, *STATEMENTS) == before, "answered by ClickHouse, not by the model"
    finally:
        assert service.stop() == 0, service.log()


def test_a_delete_or_truncate_another_writer_runs_reaches_the_model_within_its_bound(own_analytics_db, tmp_path):
    """Over HTTP the model polled only the keys inserts touched: a correction by ALTER ... DELETE or
    a TRUNCATE in ad-hoc SQL was answered from memory for up to ten minutes (its full re-read)."""
    server, _ = own_analytics_db
    data = datasets.generate(seed=91, users=2, workflows_per_user=2, jobs_per_workflow=3)
    deliver(server, data.messages)
    erased, other = data.expected.users
    bound = 1.0
    service = start_served(tmp_path, server.url, bound)
    try:
        with service.channel() as channel:
            stub = service.stub(channel)

            def jobs(user: str) -> int | None:
                try:
                    return stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=30).total_jobs
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND, error
                    return None

            assert jobs(erased) == data.expected.user(erased)[1] and jobs(other)
            execute(
                server,
                f"ALTER TABLE analytics.workflow_totals DELETE WHERE user_id = '{erased}' SETTINGS mutations_sync = 2",
            )
            time.sleep(bound + 1.5)  # a poll or two of the model's
            assert jobs(erased) is None and jobs(other) == data.expected.user(other)[1]
            execute(server, "TRUNCATE TABLE analytics.workflow_totals")
            time.sleep(bound + 1.5)
            assert jobs(other) is None
    finally:
        assert service.stop() == 0, service.log()
