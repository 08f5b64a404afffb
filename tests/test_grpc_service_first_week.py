"""Time series at the first days the aggregates hold: 1970-01-01 is a Thursday, so its week begins
on Monday 1969-12-29, a day ClickHouse's Date cannot hold (toMonday clamps it to 1970-01-01).

Over a real gRPC channel to `analytics grpc` (the statements of server/queries.py), and through the
serving model's series read from the same embedded ClickHouse.
"""

from __future__ import annotations

import datetime as dt

import pytest

from analytics_proto import analytics_pb2 as pb
from core.clickhouse.backend import HttpBackend
from server.queries import Queries, Scope
from server.serving import ServingModel
from server.validation import Period
from tests.grpc_service_support import service, stub  # noqa: F401 - fixtures
from tests.intake import post_batch

WEEK, MONTH, DAY = pb.GRANULARITY_WEEK, pb.GRANULARITY_MONTH, pb.GRANULARITY_DAY


@pytest.fixture(scope="module")
def user(analytics_db) -> str:
    """A user with workflow w-a (HEARTBEAT) logging on Thursday 1970-01-01 and Saturday 01-03,
    w-b (CONTAINER) created on Monday 01-05, and w-a updated on Tuesday 01-20."""
    user = f"first-week-{dt.datetime.now(dt.UTC):%H%M%S%f}"

    def workflow(n: int, name: str, workflow_id: str, kind: str, time: str) -> dict:
        return {
            "event_id": f"{user}-w{n}",
            "event_time": time,
            "event_type": "workflow",
            "event_name": name,
            "user_id": user,
            "workflow_id": workflow_id,
            "kind": kind,
        }

    def logs(n: int, count: int, time: str) -> dict:
        return {
            "event_id": f"{user}-l{n}",
            "event_time": time,
            "event_type": "job_log",
            "event_name": "created",
            "user_id": user,
            "workflow_id": "w-a",
            "job_id": "j-1",
            "count": count,
        }

    workflows = [
        workflow(1, "created", "w-a", "HEARTBEAT", "1970-01-01T00:00:00.000Z"),
        workflow(2, "created", "w-b", "CONTAINER", "1970-01-05T10:00:00.000Z"),
        workflow(3, "updated", "w-a", "HEARTBEAT", "1970-01-20T10:00:00.000Z"),
    ]
    job_logs = [logs(1, 3, "1970-01-01T00:00:00.000Z"), logs(2, 2, "1970-01-03T23:59:59.999Z")]
    for topic, events in (("workflows", workflows), ("job_logs", job_logs)):
        response = post_batch(analytics_db, topic, events)
        assert response.status == 200, response.data.decode()
    return user


def points(stub, user: str, granularity, start: str = "", end: str = "", **scope) -> list[tuple]:
    """(bucket_start, workflows, log entries) of each point of a series."""
    request = pb.GetAnalyticsTimeSeriesRequest(user_id=user, granularity=granularity, **scope)
    if start or end:
        request.date_range.CopyFrom(pb.DateRange(start_date=start, end_date=end))
    response = stub.GetAnalyticsTimeSeries(request, timeout=30)
    return [(p.bucket_start, p.summary.total_workflows, p.summary.total_joblogs) for p in response.points]


def test_the_week_of_1970_01_01_starts_on_monday_1969_12_29(stub, user):
    assert points(stub, user, WEEK) == [("1969-12-29", 1, 5), ("1970-01-05", 1, 0), ("1970-01-19", 1, 0)]
    # A range from the first day, from inside that week, or of one day of it: the same bucket.
    assert points(stub, user, WEEK, "1970-01-01", "1970-01-04") == [("1969-12-29", 1, 5)]
    assert points(stub, user, WEEK, "1970-01-02", "1970-01-10") == [("1969-12-29", 1, 2), ("1970-01-05", 1, 0)]
    assert points(stub, user, WEEK, "1970-01-01", "1970-01-01") == [("1969-12-29", 1, 3)]
    assert points(stub, user, WEEK, "1970-01-05") == [("1970-01-05", 1, 0), ("1970-01-19", 1, 0)]
    # One workflow's series, and a kind's.
    assert points(stub, user, WEEK, workflow_id="w-a") == [("1969-12-29", 1, 5), ("1970-01-19", 1, 0)]
    assert points(stub, user, WEEK, kind="HEARTBEAT") == [("1969-12-29", 1, 5), ("1970-01-19", 1, 0)]
    # Months and days are as they were.
    assert points(stub, user, MONTH) == [("1970-01-01", 2, 5)]
    assert points(stub, user, MONTH, "1970-01-02", "1970-01-31") == [("1970-01-01", 2, 2)]
    assert points(stub, user, DAY, "1970-01-01", "1970-01-04") == [("1970-01-01", 1, 3), ("1970-01-03", 1, 2)]


def test_the_serving_models_series_hold_the_week_before_1970(analytics_db, user):
    backend = HttpBackend(analytics_db.url)
    try:
        model = ServingModel(backend, max_staleness=60)
        model.load()
        queries = Queries(backend)
        monday = dt.date(1969, 12, 29)
        for period in (Period(), Period(last=dt.date(1970, 1, 4)), Period(last=dt.date(1970, 1, 11))):
            got = model.time_series(user, "week", period, 30)
            assert got == queries.time_series(Scope(user, period=period), "week", 30), period
            assert got[0][0] == monday and (got[0][1].workflows, got[0][1].joblogs) == (1, 5)
        assert [start for start, _ in model.time_series(user, "month", Period(), 30)] == [dt.date(1970, 1, 1)]
    finally:
        backend.close()
