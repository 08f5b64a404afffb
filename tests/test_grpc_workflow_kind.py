"""A workflow's kind is the one its latest event naming a kind named (by event time; a scheduler
WORKFLOWS event by the time it was received), whichever way it sorts and in whatever order the
events arrive: every call that shows a kind or filters by one says so, from the serving model and
from ClickHouse's statements alike, and after a rebuild of the days. Job events name no kind and
change none. An earlier version kept the largest kind a workflow was ever given."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from analytics_proto import analytics_pb2 as pb
from operations.backfill import rebuild_days
from tests.intake import post_batch, query
from tests.test_grpc_serving import launch_served, start_served
from tests.test_grpc_serving_details import queries_run

pytestmark = pytest.mark.long_file(25)  # seconds of a worker, measured: run first (tests/scheduling.py)

DAY1, DAY2 = "2026-03-01", "2026-03-02"
# Each workflow's kind now: down the alphabet (wa), up it (wb), the later event delivered first
# (wc), a scheduler WORKFLOWS event received after a workflow event (wd).
KINDS = {"wa": "CONTAINER", "wb": "HEARTBEAT", "wc": "ALPHA", "wd": "BATCH"}
JOBS = {"wa": 1, "wb": 1, "wc": 0, "wd": 0}
BOUND = 3.0


def workflow_event(user: str, workflow: str, name: str, at: str, kind: str) -> dict:
    return {
        "event_id": f"{user}-{workflow}-{name}-{at}",
        "event_time": at,
        "event_type": "workflow",
        "event_name": name,
        "user_id": user,
        "workflow_id": workflow,
        "kind": kind,
    }


def job_created(user: str, workflow: str, at: str) -> dict:
    return {
        "event_id": f"{user}-{workflow}-j1",
        "event_time": at,
        "event_type": "job",
        "event_name": "created",
        "user_id": user,
        "workflow_id": workflow,
        "job_id": "j1",
        "status": "PENDING",
    }


@pytest.fixture
def kind_db(own_analytics_db):
    """A database of the test's own: it rebuilds today, whose other tests' rows are not its to rebuild."""
    server, _ = own_analytics_db
    return server


@pytest.fixture
def changed(kind_db) -> tuple[str, str]:
    """A user whose workflows' kinds changed, and the day (UTC) its scheduler event counts on."""
    user = f"kind-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    batches = [
        (
            "workflows",
            [
                workflow_event(user, "wa", "created", f"{DAY1}T10:00:00.000Z", "HEARTBEAT"),
                workflow_event(user, "wb", "created", f"{DAY1}T10:00:00.000Z", "CONTAINER"),
                workflow_event(user, "wc", "updated", f"{DAY2}T10:00:00.000Z", "ALPHA"),
                workflow_event(user, "wd", "created", f"{DAY1}T10:00:00.000Z", "HEARTBEAT"),
            ],
        ),
        (
            "workflows",
            [
                workflow_event(user, "wa", "updated", f"{DAY2}T10:00:00.000Z", "CONTAINER"),
                workflow_event(user, "wb", "updated", f"{DAY2}T10:00:00.000Z", "HEARTBEAT"),
                workflow_event(user, "wc", "created", f"{DAY1}T10:00:00.000Z", "ZULU"),
            ],
        ),
        ("jobs", [job_created(user, "wa", f"{DAY2}T11:00:00.000Z"), job_created(user, "wb", f"{DAY1}T12:00:00.000Z")]),
        (
            "analytics",
            [
                {
                    "EventKey": f"{user}-wd",
                    "UserID": user,
                    "WorkflowID": "wd",
                    "EventType": "WORKFLOWS",
                    "Data": {"kind": "BATCH"},
                }
            ],
        ),
    ]
    for topic, events in batches:
        response = post_batch(kind_db, topic, events)
        assert response.status == 200, response.data.decode()
    [received] = query(
        kind_db,
        f"select toString(toDate(max(received_at))) as day from analytics.analytics_events where user_id = '{user}'",
    )
    return user, received["day"]


def days_of(workflow: str, today: str) -> list[str]:
    """The days a workflow has rows of in workflow_daily."""
    return {"wa": [DAY1, DAY2], "wb": [DAY1, DAY2], "wc": [DAY1, DAY2], "wd": [DAY1, today]}[workflow]


def assert_kinds(stub, user: str, today: str, kinds: dict[str, str], ranged: bool) -> None:
    days = pb.DateRange(start_date=DAY1, end_date=DAY2) if ranged else None
    listed = stub.ListWorkflowAnalytics(pb.ListWorkflowAnalyticsRequest(user_id=user, date_range=days), timeout=30)
    assert {w.workflow_id: w.kind for w in listed.workflows} == kinds
    for workflow, kind in kinds.items():
        request = pb.GetWorkflowAnalyticsDetailsRequest(user_id=user, workflow_id=workflow, date_range=days)
        assert stub.GetWorkflowAnalyticsDetails(request, timeout=30).kind == kind, workflow
    for kind in ["CONTAINER", "HEARTBEAT", "ALPHA", "BATCH", "ZULU"]:
        of_kind = sorted(workflow for workflow, now in kinds.items() if now == kind)
        request = pb.GetUserAnalyticsDetailsRequest(user_id=user, kind=kind, date_range=days)
        summary = stub.GetUserAnalyticsDetails(request, timeout=30).summary
        assert (summary.total_workflows, summary.total_jobs) == (len(of_kind), sum(JOBS[w] for w in of_kind)), kind
        request = pb.ListWorkflowAnalyticsRequest(user_id=user, kind=kind, date_range=days)
        listed = stub.ListWorkflowAnalytics(request, timeout=30)
        assert sorted((w.workflow_id, w.kind) for w in listed.workflows) == [(w, kind) for w in of_kind]
        series = stub.GetAnalyticsTimeSeries(
            pb.GetAnalyticsTimeSeriesRequest(user_id=user, kind=kind, granularity=pb.GRANULARITY_DAY, date_range=days),
            timeout=30,
        )
        expected: dict[str, int] = {}
        for workflow in of_kind:
            for day in days_of(workflow, today):
                if not ranged or day <= DAY2:
                    expected[day] = expected.get(day, 0) + 1
        assert {p.bucket_start: p.summary.total_workflows for p in series.points} == expected, kind


def daily_kinds(db, user: str) -> dict[tuple[str, str], str]:
    rows = query(
        db,
        "select workflow_id, toString(day) as day, tupleElement(max(kind), 2) as kind from analytics.workflow_daily"
        f" where user_id = '{user}' group by workflow_id, day",
    )
    return {(row["workflow_id"], row["day"]): row["kind"] for row in rows}


def test_every_call_names_and_filters_by_a_workflows_latest_kind(kind_db, changed, tmp_path):
    user, today = changed
    # A day's kind is the latest that day.
    day_kinds = {
        ("wa", DAY1): "HEARTBEAT",
        ("wa", DAY2): "CONTAINER",
        ("wb", DAY1): "CONTAINER",
        ("wb", DAY2): "HEARTBEAT",
        ("wc", DAY1): "ZULU",
        ("wc", DAY2): "ALPHA",
        ("wd", DAY1): "HEARTBEAT",
        ("wd", today): "BATCH",
    }
    (tmp_path / "served").mkdir()
    (tmp_path / "statements").mkdir()
    served = start_served(tmp_path / "served", kind_db.url, BOUND)
    statements = launch_served(tmp_path / "statements", kind_db.url, bound=0)  # 0: no model
    try:
        with served.channel() as served_channel, statements.channel() as statements_channel:
            from_model, from_statements = served.stub(served_channel), statements.stub(statements_channel)
            kinds = dict(KINDS)
            for round in ("as delivered", "after a rebuild of the days", "after a later event"):
                if round == "after a rebuild of the days":
                    rebuild_days(kind_db.settings(), [dt.date.fromisoformat(d) for d in (DAY1, DAY2, today)])
                    time.sleep(BOUND + 0.05)
                if round == "after a later event":
                    later = workflow_event(user, "wb", "updated", f"{DAY2}T12:00:00.000Z", "ALPHA")
                    assert post_batch(kind_db, "workflows", [later]).status == 200
                    kinds["wb"] = day_kinds["wb", DAY2] = "ALPHA"
                    time.sleep(BOUND + 0.05)
                # Over all time the model answers the listing and the counters itself.
                before = queries_run(served, "summary", "list_workflows")
                assert_kinds(from_model, user, today, kinds, ranged=False)
                assert queries_run(served, "summary", "list_workflows") == before, round
                for stub, ranged in ((from_model, True), (from_statements, False), (from_statements, True)):
                    assert_kinds(stub, user, today, kinds, ranged)
                assert daily_kinds(kind_db, user) == day_kinds, round
    finally:
        assert served.stop() == 0, served.log()
        assert statements.stop() == 0, statements.log()
