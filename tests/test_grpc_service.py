"""`analytics grpc` over HTTP to the embedded ClickHouse: every answer and every error code.

Events go in through the landing tables (HTTP intake) with duplicates and out of order; answers
come out of a real gRPC channel and are compared with numbers computed from the events here.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.request

import grpc
import pytest

from analytics import analytics_pb2 as pb
from tests import datasets
from tests.embedded_server import free_port
from tests.grpc_expected import Counters, DailyModel
from tests.grpc_server import SERVING, HeldRelay, call_by_reflection, health_status, listed_services, start_grpc
from tests.intake import deliver, post_batch

BATCH_SIZE = 200


@pytest.fixture(scope="module")
def loaded(analytics_db):
    """A data set delivered once; the legacy events count on the day of delivery (UTC)."""
    for _ in range(2):  # a delivery across midnight UTC would split the legacy events' day
        dataset = datasets.generate(seed=41, users=5, workflows_per_user=5, jobs_per_workflow=7)
        before = dt.datetime.now(dt.UTC).date()
        deliver(analytics_db, dataset.messages, batch_size=BATCH_SIZE)
        if dt.datetime.now(dt.UTC).date() == before:
            return dataset, DailyModel(dataset, BATCH_SIZE, before)
    raise AssertionError("could not deliver within one UTC day")


@pytest.fixture(scope="module")
def service(analytics_db, tmp_path_factory):
    metrics_port = free_port()
    server = start_grpc(
        tmp_path_factory.mktemp("grpc"),
        "--clickhouse-url",
        analytics_db.url,
        "--metrics-port",
        str(metrics_port),
    )
    server.extra["metrics_url"] = f"http://127.0.0.1:{metrics_port}/metrics"
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def stub(service):
    with service.channel() as channel:
        yield service.stub(channel)


def error_of(call, request, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=kwargs.pop("timeout", 30), **kwargs)
    return caught.value


def assert_summary(summary: pb.AnalyticsSummary, expected: Counters) -> None:
    assert (
        summary.total_workflows,
        summary.total_jobs,
        summary.total_joblogs,
        summary.total_job_execution_duration,
    ) == (len(expected.workflows), expected.jobs, expected.joblogs, expected.seconds)
    outcomes = summary.outcomes
    assert (outcomes.completed, outcomes.failed, outcomes.cancelled) == (
        expected.completed,
        expected.failed,
        expected.cancelled,
    )
    if expected.success_rate is None:
        assert not outcomes.HasField("success_rate")
    else:
        assert outcomes.success_rate == pytest.approx(expected.success_rate)
    if expected.percentiles is None:
        assert not summary.HasField("duration_percentiles")
    else:
        got = summary.duration_percentiles
        # t-digests keep Float32 means: equal to the nearest-rank value up to float precision
        assert (got.p50, got.p90, got.p95, got.p99) == pytest.approx(expected.percentiles, rel=1e-6)


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


def test_listing_with_a_kind_and_a_date_range(stub, loaded):
    _, model = loaded
    user = model.users[2]
    days = sorted(day for u, _, day in model.daily if u == user)
    first, last = days[len(days) // 3], days[-1]
    rows = all_pages(
        stub,
        pb.ListWorkflowAnalyticsRequest(
            user_id=user,
            kind="HEARTBEAT",
            date_range=pb.DateRange(start_date=first.isoformat(), end_date=last.isoformat()),
            page_size=1,
        ),
    )
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


# -- errors -------------------------------------------------------------------------------------

LONG = "x" * 129


def invalid_requests():
    february_30 = {"start_date": "2026-02-30"}
    return [
        ("GetUserAnalytics", pb.GetUserAnalyticsRequest(), "user_id is required"),
        ("GetUserAnalytics", pb.GetUserAnalyticsRequest(user_id=LONG), "longer than 128"),
        ("GetUserAnalytics", pb.GetUserAnalyticsRequest(user_id="a/b"), "'/' at position 1"),
        ("GetUserAnalytics", pb.GetUserAnalyticsRequest(user_id="a\nb"), "letters, digits"),
        ("GetWorkflowAnalytics", pb.GetWorkflowAnalyticsRequest(user_id="u"), "workflow_id is required"),
        ("GetWorkflowAnalytics", pb.GetWorkflowAnalyticsRequest(workflow_id="w"), "user_id is required"),
        (
            "GetWorkflowAnalytics",
            pb.GetWorkflowAnalyticsRequest(user_id="u", workflow_id="w' or 1=1"),
            "workflow_id may hold only",
        ),
        (
            "GetUserAnalyticsDetails",
            pb.GetUserAnalyticsDetailsRequest(user_id="u", date_range=pb.DateRange(**february_30)),
            "date_range.start_date must be a date YYYY-MM-DD",
        ),
        (
            "GetUserAnalyticsDetails",
            pb.GetUserAnalyticsDetailsRequest(user_id="u", date_range=pb.DateRange(end_date="20260101")),
            "date_range.end_date must be a date",
        ),
        (
            "GetUserAnalyticsDetails",
            pb.GetUserAnalyticsDetailsRequest(
                user_id="u", date_range=pb.DateRange(start_date="2026-05-02", end_date="2026-05-01")
            ),
            "start_date 2026-05-02 is after",
        ),
        (
            "GetUserAnalyticsDetails",
            pb.GetUserAnalyticsDetailsRequest(user_id="u", date_range=pb.DateRange(start_date="1969-12-31")),
            "between 1970-01-01 and 2149-06-06",
        ),
        ("GetUserAnalyticsDetails", pb.GetUserAnalyticsDetailsRequest(user_id="u", kind="a kind"), "kind must be"),
        (
            "GetWorkflowAnalyticsDetails",
            pb.GetWorkflowAnalyticsDetailsRequest(user_id="u", workflow_id=""),
            "workflow_id is required",
        ),
        (
            "GetAnalyticsTimeSeries",
            pb.GetAnalyticsTimeSeriesRequest(user_id="u", granularity=9),
            "granularity 9 is not one of GRANULARITY_DAY",
        ),
        (
            "GetAnalyticsTimeSeries",
            pb.GetAnalyticsTimeSeriesRequest(user_id="u", workflow_id=LONG),
            "workflow_id is longer",
        ),
        ("ListWorkflowAnalytics", pb.ListWorkflowAnalyticsRequest(user_id="u", page_size=-1), "page_size"),
        ("ListWorkflowAnalytics", pb.ListWorkflowAnalyticsRequest(user_id="u", order_by=7), "order_by 7"),
        (
            "ListWorkflowAnalytics",
            pb.ListWorkflowAnalyticsRequest(user_id="u", page_token="not-a-token"),
            "page_token is not a token this service issued",
        ),
    ]


@pytest.mark.parametrize(
    ("method", "request_message", "message"),
    invalid_requests(),
    ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(invalid_requests())],
)
def test_invalid_arguments_are_named(stub, method, request_message, message):
    error = error_of(getattr(stub, method), request_message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


def test_a_page_token_only_continues_its_own_query(stub, loaded):
    _, model = loaded
    user = model.users[0]
    first = stub.ListWorkflowAnalytics(pb.ListWorkflowAnalyticsRequest(user_id=user, page_size=1), timeout=30)
    assert first.next_page_token
    for other in (
        pb.ListWorkflowAnalyticsRequest(user_id=model.users[1], page_size=1),
        pb.ListWorkflowAnalyticsRequest(user_id=user, page_size=1, ascending=True),
        pb.ListWorkflowAnalyticsRequest(user_id=user, page_size=1, kind="HEARTBEAT"),
        pb.ListWorkflowAnalyticsRequest(user_id=user, page_size=1, order_by=pb.WORKFLOW_ORDER_JOBLOGS),
    ):
        other.page_token = first.next_page_token
        error = error_of(stub.ListWorkflowAnalytics, other)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token belongs to another query" in error.details()
    # the page size may change between pages
    second = stub.ListWorkflowAnalytics(
        pb.ListWorkflowAnalyticsRequest(user_id=user, page_size=3, page_token=first.next_page_token), timeout=30
    )
    assert first.workflows[0].workflow_id not in [row.workflow_id for row in second.workflows]


def not_found_requests(user: str, others_workflow: str):
    unknown = "nobody-" + user
    return [
        ("GetUserAnalytics", pb.GetUserAnalyticsRequest(user_id=unknown)),
        ("GetWorkflowAnalytics", pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id="no-such-workflow")),
        ("GetWorkflowAnalytics", pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=others_workflow)),
        ("GetUserAnalyticsDetails", pb.GetUserAnalyticsDetailsRequest(user_id=unknown)),
        (
            "GetWorkflowAnalyticsDetails",
            pb.GetWorkflowAnalyticsDetailsRequest(user_id=user, workflow_id=others_workflow),
        ),
        ("GetAnalyticsTimeSeries", pb.GetAnalyticsTimeSeriesRequest(user_id=unknown)),
        ("GetAnalyticsTimeSeries", pb.GetAnalyticsTimeSeriesRequest(user_id=user, workflow_id=others_workflow)),
        ("ListWorkflowAnalytics", pb.ListWorkflowAnalyticsRequest(user_id=unknown)),
    ]


def test_unknown_users_and_other_users_workflows_are_not_found(stub, loaded):
    _, model = loaded
    user, other = model.users[0], model.users[1]
    others_workflow = model.workflows(other)[0]
    for method, request in not_found_requests(user, others_workflow):
        error = error_of(getattr(stub, method), request)
        assert error.code() == grpc.StatusCode.NOT_FOUND, (method, request)
        assert "no analytics for" in error.details()
    # the owner does see it
    owner = stub.GetWorkflowAnalytics(
        pb.GetWorkflowAnalyticsRequest(user_id=other, workflow_id=others_workflow), timeout=30
    )
    assert owner.workflow_id == others_workflow


def test_a_deadline_too_short_to_answer_is_deadline_exceeded(analytics_db, loaded, tmp_path):
    """The server itself answers DEADLINE_EXCEEDED when ClickHouse cannot answer within the call's deadline.

    ClickHouse is reached through a relay that holds the query, so the call arrives with time to
    spare and the server, not the client's own timer, is what gives up (its metrics say so).
    """
    _, model = loaded
    relay = HeldRelay(analytics_db.port)
    metrics_port = free_port()
    server = start_grpc(tmp_path, "--clickhouse-url", relay.url, "--metrics-port", str(metrics_port))
    method = {"grpc_service": "analytics.AnalyticsService", "grpc_method": "GetUserAnalytics"}

    def server_deadlines() -> tuple[float, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            scraped = response.read().decode()
        return metric(scraped, "analytics_grpc_responses_total", grpc_code="DEADLINE_EXCEEDED", **method), scraped

    try:
        relay.hold()
        with server.channel() as channel:
            call = server.stub(channel).GetUserAnalytics.future(
                pb.GetUserAnalyticsRequest(user_id=model.users[0]), timeout=2.0
            )
            assert relay.request_seen.wait(30)  # the server got the call and asked ClickHouse
            assert call.exception(60).code() == grpc.StatusCode.DEADLINE_EXCEEDED
        give_up = time.monotonic() + 30
        while not server_deadlines()[0] and time.monotonic() < give_up:
            time.sleep(0.2)  # the server gives up a moment after the client's own timer fired
        count, scraped = server_deadlines()
        assert count == 1
        assert metric(scraped, "analytics_clickhouse_query_seconds_count", query="user_totals", outcome="timeout") == 1
        assert metric(scraped, "analytics_grpc_responses_total", grpc_code="OK", **method) == 0
    finally:
        relay.release()
        assert server.stop() == 0, server.log()
        relay.close()


# -- health, reflection, metrics ----------------------------------------------------------------


def test_health_answers_serving_for_the_server_and_the_service(service):
    with service.channel() as channel:
        assert health_status(channel) == SERVING
        assert health_status(channel, "analytics.AnalyticsService") == SERVING


def test_reflection_lists_the_services(service):
    assert listed_services(service.target) == [
        "analytics.AnalyticsService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample of the Prometheus text format; 0 when absent."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{key}="{value}"' in match.group(1) for key, value in labels.items()):
            return float(match.group(2))
    return 0.0


def test_metrics_count_calls_codes_latency_and_query_time(service, stub, loaded):
    _, model = loaded

    def scrape() -> str:
        with urllib.request.urlopen(service.extra["metrics_url"], timeout=10) as response:
            return response.read().decode()

    before = scrape()
    stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=model.users[0]), timeout=30)
    error_of(stub.GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id="nobody-at-all"))
    error_of(stub.GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=""))
    after = scrape()
    method = {"grpc_service": "analytics.AnalyticsService", "grpc_method": "GetUserAnalytics"}
    for code in ("OK", "NOT_FOUND", "INVALID_ARGUMENT"):
        name = "analytics_grpc_responses_total"
        assert metric(after, name, grpc_code=code, **method) == metric(before, name, grpc_code=code, **method) + 1
    assert (
        metric(after, "analytics_grpc_requests_total", **method)
        == metric(before, "analytics_grpc_requests_total", **method) + 3
    )
    assert (
        metric(after, "analytics_grpc_request_seconds_count", **method)
        == metric(before, "analytics_grpc_request_seconds_count", **method) + 3
    )
    # the invalid request never reached ClickHouse
    query = {"query": "user_totals", "outcome": "ok"}
    assert (
        metric(after, "analytics_clickhouse_query_seconds_count", **query)
        == metric(before, "analytics_clickhouse_query_seconds_count", **query) + 2
    )
