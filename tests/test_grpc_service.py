"""`analytics grpc` over HTTP to the embedded ClickHouse: every answer (errors: test_grpc_service_errors.py).

Events go in through the landing tables (HTTP intake) with duplicates and out of order; answers
come out of a real gRPC channel and are compared with numbers computed from the events here.
"""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from analytics_proto import analytics_pb2 as pb
from tests import datasets
from tests.grpc_expected import Counters
from tests.grpc_server import call_by_reflection
from tests.grpc_service_support import assert_summary, error_of, load, service, stub  # noqa: F401 - fixtures
from tests.intake import post_batch


@pytest.fixture(scope="module", params=["as generated", "written otherwise"])
def loaded(request, analytics_db):
    """Each test on the data set as generated, then on the same events as other producers may
    write them (other offsets, digits past the millisecond, either status spelling, count null)."""
    return load(analytics_db, written_otherwise=request.param == "written otherwise")


# -- the original contract ----------------------------------------------------------------------


def test_every_user_and_workflow_matches_the_metric_definitions(stub, loaded):
    dataset, _ = loaded
    expected = dataset.expected
    for user in expected.users:
        response = stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=30)
        got = (response.total_workflows, response.total_jobs, response.total_joblogs)
        assert (*got, response.total_job_execution_duration) == expected.user(user), user
    for user, workflow in sorted(expected.workflows):
        response = stub.GetWorkflowAnalytics(
            pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=workflow), timeout=30
        )
        assert response.workflow_id == workflow
        got = (response.total_jobs, response.total_joblogs, response.total_job_execution_duration)
        assert got == expected.workflow(user, workflow), (user, workflow)


def test_the_model_of_this_test_agrees_with_the_data_sets_own_totals(loaded):
    dataset, model = loaded
    for user in dataset.expected.users:
        total = model.total(user)
        assert (len(total.workflows), total.jobs, total.joblogs, total.seconds) == dataset.expected.user(user)


def test_the_seeds_grpcurl_call_through_reflection_only(service, loaded):
    dataset, _ = loaded
    user = dataset.expected.users[0]
    workflows, jobs, joblogs, seconds = dataset.expected.user(user)
    answer = call_by_reflection(
        service.target, "analytics.AnalyticsService/GetUserAnalytics", f'{{"user_id": "{user}"}}'
    )
    assert answer == {
        "total_workflows": workflows,
        "total_jobs": str(jobs),
        "total_joblogs": str(joblogs),
        "total_job_execution_duration": str(seconds),
    }


def test_reflection_answers_under_v1_as_under_v1alpha(service):
    """grpc-go's servers (the scheduler's own analytics service was one) serve reflection as
    grpc.reflection.v1 too, and a client that speaks only v1 (grpc-go's grpcreflect.NewClientV1,
    `buf curl --reflect-protocol grpc-v1`) was answered UNIMPLEMENTED. v1's messages are
    v1alpha's, field for field, so v1alpha's classes write and read them here."""

    def ask(name: str, request: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
        with grpc.insecure_channel(service.target) as channel:
            call = channel.stream_stream(
                f"/{name}/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            (response,) = call(iter([request]), timeout=30)
            return response

    v1, v1alpha = "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"
    listing = reflection_pb2.ServerReflectionRequest(list_services="")
    listed = {listed.name for listed in ask(v1, listing).list_services_response.service}
    assert {"analytics.AnalyticsService", "grpc.health.v1.Health"} <= listed
    assert ask(v1, listing) == ask(v1alpha, listing)
    symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol="analytics.AnalyticsService")
    answer = ask(v1, symbol)
    assert answer.file_descriptor_response.file_descriptor_proto
    assert answer == ask(v1alpha, symbol)


# -- details ------------------------------------------------------------------------------------


def test_user_details_for_all_time_a_kind_and_a_date_range(stub, loaded):
    dataset, model = loaded
    middle = min(day for _, _, day in model.daily) + dt.timedelta(days=7)
    for user in model.users:
        response = stub.GetUserAnalyticsDetails(pb.GetUserAnalyticsDetailsRequest(user_id=user), timeout=30)
        assert response.user_id == user
        assert_summary(response.summary, model.total(user))
        for kind in ("HEARTBEAT", "CONTAINER"):
            response = stub.GetUserAnalyticsDetails(
                pb.GetUserAnalyticsDetailsRequest(user_id=user, kind=kind), timeout=30
            )
            assert_summary(response.summary, model.total(user, kind=kind))
        period = pb.DateRange(start_date=middle.isoformat(), end_date=(middle + dt.timedelta(days=6)).isoformat())
        response = stub.GetUserAnalyticsDetails(
            pb.GetUserAnalyticsDetailsRequest(user_id=user, date_range=period), timeout=30
        )
        assert_summary(response.summary, model.total(user, first=middle, last=middle + dt.timedelta(days=6)))
        # open ends
        response = stub.GetUserAnalyticsDetails(
            pb.GetUserAnalyticsDetailsRequest(user_id=user, date_range=pb.DateRange(start_date=middle.isoformat())),
            timeout=30,
        )
        assert_summary(response.summary, model.total(user, first=middle))


def test_workflow_details_with_kind_outcomes_and_percentiles(stub, loaded):
    dataset, model = loaded
    for user in model.users:
        for workflow in model.workflows(user):
            response = stub.GetWorkflowAnalyticsDetails(
                pb.GetWorkflowAnalyticsDetailsRequest(user_id=user, workflow_id=workflow), timeout=30
            )
            assert (response.workflow_id, response.kind) == (workflow, dataset.expected.kinds[(user, workflow)])
            assert_summary(response.summary, model.total(user, workflow))


def test_a_user_known_but_idle_in_the_range_gets_zeros_not_an_error(stub, loaded):
    _, model = loaded
    period = pb.DateRange(start_date="2001-01-01", end_date="2001-12-31")
    response = stub.GetUserAnalyticsDetails(
        pb.GetUserAnalyticsDetailsRequest(user_id=model.users[0], date_range=period), timeout=30
    )
    assert_summary(response.summary, Counters())
    series = stub.GetAnalyticsTimeSeries(
        pb.GetAnalyticsTimeSeriesRequest(user_id=model.users[0], date_range=period), timeout=30
    )
    assert list(series.points) == []


def test_a_workflow_without_finished_jobs_has_no_rate_and_no_percentiles(stub, analytics_db):
    prefix = datasets.generate(seed=2, users=0).prefix
    ids = {"user_id": f"{prefix}-u", "workflow_id": f"{prefix}-w", "job_id": f"{prefix}-j"}
    created = {
        "event_id": f"{prefix}-1",
        "event_time": "2026-03-02T10:00:00Z",
        "event_type": "job",
        "event_name": "created",
        "status": "pending",
        **ids,
    }
    assert post_batch(analytics_db, "jobs", [created]).status == 200
    response = stub.GetWorkflowAnalyticsDetails(
        pb.GetWorkflowAnalyticsDetailsRequest(user_id=ids["user_id"], workflow_id=ids["workflow_id"]), timeout=30
    )
    assert response.kind == ""  # no workflow event has named it
    assert response.summary.total_jobs == 1
    assert not response.summary.outcomes.HasField("success_rate")
    assert not response.summary.HasField("duration_percentiles")


# -- time series --------------------------------------------------------------------------------

GRANULARITIES = {
    "day": pb.GRANULARITY_DAY,
    "week": pb.GRANULARITY_WEEK,
    "month": pb.GRANULARITY_MONTH,
}


def assert_series(response: pb.GetAnalyticsTimeSeriesResponse, expected: dict) -> None:
    assert [point.bucket_start for point in response.points] == [day.isoformat() for day in expected]
    for point, counters in zip(response.points, expected.values(), strict=True):
        assert_summary(point.summary, counters)


@pytest.mark.parametrize("granularity", list(GRANULARITIES))
def test_time_series_per_user_kind_and_workflow(stub, loaded, granularity):
    _, model = loaded
    for user in model.users:
        request = pb.GetAnalyticsTimeSeriesRequest(user_id=user, granularity=GRANULARITIES[granularity])
        assert_series(stub.GetAnalyticsTimeSeries(request, timeout=30), model.series(user, granularity))
        request.kind = "CONTAINER"
        assert_series(
            stub.GetAnalyticsTimeSeries(request, timeout=30), model.series(user, granularity, kind="CONTAINER")
        )
    user = model.users[0]
    for workflow in model.workflows(user):
        request = pb.GetAnalyticsTimeSeriesRequest(
            user_id=user, workflow_id=workflow, granularity=GRANULARITIES[granularity]
        )
        assert_series(stub.GetAnalyticsTimeSeries(request, timeout=30), model.series(user, granularity, workflow))


def test_time_series_default_to_days_and_honour_the_date_range(stub, loaded):
    _, model = loaded
    user = model.users[1]
    days = list(model.series(user, "day"))
    first, last = days[1], days[-2]
    response = stub.GetAnalyticsTimeSeries(
        pb.GetAnalyticsTimeSeriesRequest(
            user_id=user, date_range=pb.DateRange(start_date=first.isoformat(), end_date=last.isoformat())
        ),
        timeout=30,
    )
    expected = {day: counters for day, counters in model.series(user, "day").items() if first <= day <= last}
    assert_series(response, expected)


# -- listing workflows --------------------------------------------------------------------------

ORDERS = {
    pb.WORKFLOW_ORDER_UNSPECIFIED: "jobs",
    pb.WORKFLOW_ORDER_JOBS: "jobs",
    pb.WORKFLOW_ORDER_JOB_EXECUTION_DURATION: "seconds",
    pb.WORKFLOW_ORDER_JOBLOGS: "joblogs",
}


def all_pages(stub, request: pb.ListWorkflowAnalyticsRequest) -> list[pb.WorkflowAnalytics]:
    rows, pages = [], 0
    while True:
        response = stub.ListWorkflowAnalytics(request, timeout=30)
        rows += response.workflows
        pages += 1
        assert len(response.workflows) <= (request.page_size or 50)
        if not response.next_page_token:
            return rows
        assert pages < 100
        request.page_token = response.next_page_token


@pytest.mark.parametrize("order", list(ORDERS), ids=[pb.WorkflowOrder.Name(o) for o in ORDERS])
@pytest.mark.parametrize("ascending", [False, True], ids=["largest-first", "smallest-first"])
def test_workflows_sorted_and_paged_cover_each_workflow_once(stub, loaded, order, ascending):
    dataset, model = loaded
    field = ORDERS[order]
    for user in model.users:
        rows = all_pages(
            stub, pb.ListWorkflowAnalyticsRequest(user_id=user, order_by=order, ascending=ascending, page_size=2)
        )
        totals = {workflow: model.total(user, workflow) for workflow in model.workflows(user)}

        def key(workflow, totals=totals):
            value = getattr(totals[workflow], field)
            return (value if ascending else -value, workflow)

        assert [row.workflow_id for row in rows] == sorted(totals, key=key)
        for row in rows:
            counters = totals[row.workflow_id]
            assert row.kind == dataset.expected.kinds[(user, row.workflow_id)]
            assert (row.total_jobs, row.total_joblogs, row.total_job_execution_duration) == (
                counters.jobs,
                counters.joblogs,
                counters.seconds,
            )
            assert (row.outcomes.completed, row.outcomes.failed, row.outcomes.cancelled) == (
                counters.completed,
                counters.failed,
                counters.cancelled,
            )


# All time and a date range are answered from different tables (workflow_totals, workflow_daily).
@pytest.mark.parametrize("ranged", [False, True], ids=["all-time", "date-range"])
def test_listing_with_a_kind(stub, loaded, ranged):
    _, model = loaded
    user = model.users[2]
    request = pb.ListWorkflowAnalyticsRequest(user_id=user, kind="HEARTBEAT", page_size=1)
    first, last = dt.date.min, dt.date.max
    if ranged:
        days = sorted(day for u, _, day in model.daily if u == user)
        first, last = days[len(days) // 3], days[-1]
        request.date_range.CopyFrom(pb.DateRange(start_date=first.isoformat(), end_date=last.isoformat()))
    rows = all_pages(stub, request)
    expected = {}
    for workflow in model.workflows(user):
        counters = model.total(user, workflow, kind="HEARTBEAT", first=first, last=last)
        if counters.workflows:
            expected[workflow] = counters
    assert sorted(row.workflow_id for row in rows) == sorted(expected)
    for row in rows:
        assert row.kind == "HEARTBEAT"
        assert row.total_jobs == expected[row.workflow_id].jobs


def test_a_page_size_above_the_maximum_is_capped(stub, loaded):
    _, model = loaded
    response = stub.ListWorkflowAnalytics(
        pb.ListWorkflowAnalyticsRequest(user_id=model.users[0], page_size=1_000_000), timeout=30
    )
    assert len(response.workflows) == len(model.workflows(model.users[0]))
    assert response.next_page_token == ""


def workflow_created(user: str, n: int, workflow_id: str, kind: str) -> dict:
    return {
        "event_id": f"{user}-{n}",
        "event_time": "2026-11-20T10:00:00.000Z",
        "event_type": "workflow",
        "event_name": "created",
        "user_id": user,
        "workflow_id": workflow_id,
        "kind": kind,
    }


def test_workflows_with_ids_as_long_as_a_producer_sent_page_within_what_a_client_takes(stub, analytics_db):
    """The event contract bounds no id: 60 workflows of 60 KB ids made one 3.6 MB page, and more
    with larger ids or pages, which gRPC clients (4 MiB by default, the scheduler's Go client too)
    refuse as RESOURCE_EXHAUSTED. A page now stops before its ids and its token pass 3 MiB."""
    user = f"long-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    workflows = [f"{n:02}-" + "w" * 60_000 for n in range(60)]
    events = [workflow_created(user, n, workflow, "CONTAINER") for n, workflow in enumerate(workflows)]
    assert post_batch(analytics_db, "workflows", events).status == 200
    pages, request = [], pb.ListWorkflowAnalyticsRequest(user_id=user, page_size=1000, ascending=True)
    while True:
        page = stub.ListWorkflowAnalytics(request, timeout=30)
        assert 0 < page.ByteSize() <= 3 << 20  # the ids and the token, which holds the last one
        pages.append([workflow.workflow_id for workflow in page.workflows])
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert len(pages) == 2 and [workflow for page in pages for workflow in page] == workflows


def test_a_kind_filter_finds_any_kind_a_workflow_event_may_name(stub, analytics_db):
    """The event contract takes any non-empty UTF-8 text as a kind; the filter refused all but 1-64
    of [A-Za-z0-9-_.:], so such a workflow could not be filtered on (INVALID_ARGUMENT)."""
    user = f"kinds-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    kinds = ["ΚΙΝΔ-ünï", "a kind\twith 'quotes', \\ and \0", "k" * 300, "HEARTBEAT"]
    events = [workflow_created(user, n, f"w-{n}", kind) for n, kind in enumerate(kinds)]
    assert post_batch(analytics_db, "workflows", events).status == 200
    days = pb.DateRange(start_date="2026-11-20", end_date="2026-11-20")
    for n, kind in enumerate(kinds):
        for date_range in (None, days):
            details = stub.GetUserAnalyticsDetails(
                pb.GetUserAnalyticsDetailsRequest(user_id=user, kind=kind, date_range=date_range), timeout=30
            )
            assert details.summary.total_workflows == 1, kind
            listed = stub.ListWorkflowAnalytics(
                pb.ListWorkflowAnalyticsRequest(user_id=user, kind=kind, date_range=date_range), timeout=30
            )
            assert [(w.workflow_id, w.kind) for w in listed.workflows] == [(f"w-{n}", kind)]
        series = stub.GetAnalyticsTimeSeries(pb.GetAnalyticsTimeSeriesRequest(user_id=user, kind=kind), timeout=30)
        assert [(p.bucket_start, p.summary.total_workflows) for p in series.points] == [("2026-11-20", 1)]
    # A kind no workflow has is no error: nothing matches.
    details = stub.GetUserAnalyticsDetails(pb.GetUserAnalyticsDetailsRequest(user_id=user, kind="ΚΙΝΔ"), timeout=30)
    assert details.summary.total_workflows == 0
