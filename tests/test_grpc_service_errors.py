"""`analytics grpc` over HTTP to the embedded ClickHouse: every error code, health, reflection and metrics.

Events go in through the landing tables (HTTP intake) with duplicates and out of order; answers
come out of a real gRPC channel and are compared with numbers computed from the events here.
"""

from __future__ import annotations

import collections
import random
import re
import time
import urllib.request

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from tests.embedded_server import free_port
from tests.grpc_server import SERVING, HeldRelay, health_status, listed_services, start_grpc
from tests.grpc_service_support import assert_summary, error_of, loaded, service, stub  # noqa: F401 - fixtures

pytestmark = pytest.mark.long_file(44)  # seconds of a worker, measured: run first (tests/scheduling.py)

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
            # in the right form: the day is wrong, not its form
            "date_range.start_date 2026-02-30 is not a day on the calendar: day is out of range for month",
        ),
        (
            "GetAnalyticsTimeSeries",
            pb.GetAnalyticsTimeSeriesRequest(user_id="u", date_range=pb.DateRange(end_date="2026-13-01")),
            "date_range.end_date 2026-13-01 is not a day on the calendar: month must be in 1..12",
        ),
        (
            "ListJobLogs",
            pb.ListJobLogsRequest(user_id="u", workflow_id="w", job_id="j", start_time="2026-02-30T10:00:00Z"),
            "start_time '2026-02-30T10:00:00Z' is not a time on the calendar: day is out of range for month",
        ),
        (
            "ListJobLogs",
            pb.ListJobLogsRequest(user_id="u", workflow_id="w", job_id="j", end_time="2026-03-02T24:00:00Z"),
            "end_time '2026-03-02T24:00:00Z' is not a time on the calendar: hour must be in 0..23",
        ),
        (
            "ListJobLogs",
            pb.ListJobLogsRequest(user_id="u", workflow_id="w", job_id="j", end_time="2026-03-02T10:00:00+24:00"),
            "end_time '2026-03-02T10:00:00+24:00' has an offset outside -23:59 to +23:59 (+24:00)",
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
            pb.GetUserAnalyticsDetailsRequest(user_id="u", date_range=pb.DateRange(end_date="1969-12-31")),
            "date_range.end_date 1969-12-31 is outside the days events may have, 1970-01-01 to 2149-06-06",
        ),
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
        (  # a megabyte of it went to ClickHouse in the URL and came back INTERNAL
            "GetUserAnalyticsDetails",
            pb.GetUserAnalyticsDetailsRequest(user_id="u", kind="é" * 500_000),
            "kind is longer than 10,000 characters (500,000)",
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


# Requests as raw bytes, as a client of another language may send them: an id that is not
# UTF-8 (field 1 or 2, a string), a message cut short, bytes that are no message at all.
UNREADABLE = [
    ("GetUserAnalytics", b"\x0a\x03\xff\xfe\xfd"),
    ("GetWorkflowAnalytics", b"\x0a\x01u\x12\x03\xc3\x28w"),
    ("GetUserAnalytics", b"\x0a\x05ab"),
    ("ListWorkflowAnalytics", b"\xff\xff\xff"),
    ("StreamJobLogs", b"\x0a\x01u\x12\x02\xed\xa0"),
]


@pytest.mark.parametrize(("method", "payload"), UNREADABLE, ids=[f"{m}-{i}" for i, (m, _) in enumerate(UNREADABLE)])
def test_a_request_that_is_not_a_valid_message_is_an_invalid_argument_naming_its_type(service, method, payload):
    streaming = pb.DESCRIPTOR.services_by_name["AnalyticsService"].methods_by_name[method].server_streaming
    with service.channel() as channel:
        path = f"/analytics.AnalyticsService/{method}"
        call = channel.unary_stream(path) if streaming else channel.unary_unary(path)
        with pytest.raises(grpc.RpcError) as caught:
            answer = call(payload, timeout=30)
            if streaming:
                list(answer)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert f"not a valid analytics.{method}Request" in caught.value.details()


# Fields sent with another wire type than the contract's, by a client whose proto does not match:
# protobuf set them aside unread. The user's id came as a number ("user_id is required"); a date
# range's start as a number (the range read as all time, and its totals answered); a page size as
# text; a granularity as a fixed 32-bit value (read as days).
MISTYPED = [
    ("GetUserAnalytics", b"\x08\x7b", "user_id (field 1) came as a varint, not as the string it is"),
    (
        "GetUserAnalyticsDetails",
        b"\x0a\x05u-one\x12\x03\x08\xea\x0f",
        "date_range.start_date (field 1) came as a varint, not as the string it is",
    ),
    ("ListWorkflowAnalytics", b"\x0a\x05u-one\x22\x0210", "page_size (field 4) came as bytes"),
    (
        "GetAnalyticsTimeSeries",
        b"\x0a\x05u-one\x1d\x02\x00\x00\x00",
        "granularity (field 3) came as a 32-bit value, not as the enum analytics.Granularity it is",
    ),
]


@pytest.mark.parametrize(("method", "payload", "message"), MISTYPED, ids=[m for m, _, _ in MISTYPED])
def test_a_field_of_another_wire_type_than_the_contracts_is_named_not_ignored(service, method, payload, message):
    with service.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(f"/analytics.AnalyticsService/{method}")(payload, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert caught.value.details().startswith(f"the request is not a valid analytics.{method}Request: {message}")
    assert "the client's proto does not match the service's" in caught.value.details()


def test_fields_the_contract_does_not_have_are_ignored_as_protobuf_does(stub, service, loaded):
    """A newer client's fields (numbers the contract does not know) are no error."""
    dataset, _ = loaded
    user = dataset.expected.users[0]
    payload = pb.GetUserAnalyticsRequest(user_id=user).SerializeToString() + b"\x98\x06\x01\xa2\x06\x01x"
    with service.channel() as channel:
        raw = channel.unary_unary("/analytics.AnalyticsService/GetUserAnalytics")(payload, timeout=30)
    answer = pb.GetUserAnalyticsResponse.FromString(raw)
    got = (answer.total_workflows, answer.total_jobs, answer.total_joblogs, answer.total_job_execution_duration)
    assert got == dataset.expected.user(user)


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


@pytest.mark.parametrize("method", ["GetUserAnalyticsDetails", "GetAnalyticsTimeSeries", "ListWorkflowAnalytics"])
def test_the_longest_kind_a_filter_may_name_reaches_clickhouse(stub, loaded, method):
    """10,000 characters of four UTF-8 bytes each: 120 KB of the URL that carries the parameter."""
    dataset, _ = loaded
    request = getattr(pb, f"{method}Request")(user_id=dataset.expected.users[0], kind="😀" * 10_000)
    answer = getattr(stub, method)(request, timeout=30)
    found = {
        "GetUserAnalyticsDetails": lambda: answer.summary.total_jobs,
        "GetAnalyticsTimeSeries": lambda: len(answer.points),
        "ListWorkflowAnalytics": lambda: len(answer.workflows),
    }[method]()
    assert found == 0  # no workflow of that kind; asked of ClickHouse and answered


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


# -- random requests ----------------------------------------------------------------------------

FUZZ_SEED = 20261206
ODD_TEXT = [
    "", " ", "u", "x" * 129, "x" * 5000, "a/b", "a\nb", "😀", "\u0000", "' or 1=1 --", "..", "%", "\\", "NULL",
    "-1", "2026-02-30", "2026-05-01", "1969-12-31", "2149-06-07", "9999-12-31", "123E4567-E89B-12D3-A456-426614174000",
]  # fmt: skip
ODD_NUMBERS = [0, 1, 2, 3, -1, 7, 100, 1000, 2**31 - 1, -(2**31)]


def random_request(message_class, rng: random.Random, known: list[str]):
    """A request of the class with each field left unset or set to an odd or (half the strings) a known value."""
    message = message_class()
    for field in message_class.DESCRIPTOR.fields:
        if rng.random() < 0.25:
            continue
        if field.type == field.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(random_request(field.message_type._concrete_class, rng, known))
        elif field.type == field.TYPE_STRING:
            setattr(message, field.name, rng.choice(known if rng.random() < 0.5 else ODD_TEXT))
        elif field.type == field.TYPE_BOOL:
            setattr(message, field.name, rng.random() < 0.5)
        else:
            unsigned = field.type in (field.TYPE_UINT32, field.TYPE_UINT64)
            setattr(message, field.name, abs(rng.choice(ODD_NUMBERS)) if unsigned else rng.choice(ODD_NUMBERS))
    return message


def test_random_requests_are_answered_or_refused_with_a_named_reason_never_an_internal_error(stub, loaded):
    """Every call, the log tail too (its deadline ends a tail that waits for lines)."""
    _, model = loaded
    user = model.users[0]
    known = [user, *model.workflows(user)[:2], "GRANULARITY_DAY"]
    rng = random.Random(FUZZ_SEED)
    refused = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    # Unary calls, then log tails: a tail of a job that exists waits for its lines, so its deadline ends it.
    rounds = [(False, 400, 30, refused), (True, 40, 0.5, (*refused, grpc.StatusCode.DEADLINE_EXCEEDED))]
    codes = collections.Counter()
    for streaming, calls, timeout, allowed in rounds:
        methods = [
            m for m in pb.DESCRIPTOR.services_by_name["AnalyticsService"].methods if m.server_streaming == streaming
        ]
        for _ in range(calls):
            method = rng.choice(methods)
            request = random_request(method.input_type._concrete_class, rng, known)
            try:
                answer = getattr(stub, method.name)(request, timeout=timeout)
                if streaming:
                    list(answer)
                codes[(method.name, "OK")] += 1
            except grpc.RpcError as error:
                codes[(method.name, error.code().name)] += 1
                context = (FUZZ_SEED, method.name, str(request)[:300], error.code(), error.details())
                assert error.code() in allowed, context
                assert error.details(), context
    answered = sum(count for (_, code), count in codes.items() if code == "OK")
    assert answered >= 10 and {"OK", "INVALID_ARGUMENT", "NOT_FOUND"} <= {code for _, code in codes}, codes


def test_an_idle_client_that_keeps_its_connection_alive_with_pings_is_not_sent_away(service):
    """grpc-go clients often ping at a fixed interval, calls or not (keepalive.ClientParameters with
    PermitWithoutStream; 10 s at the least there). By default the server took a ping at most every
    5 minutes without calls and closed the connection with GOAWAY "too_many_pings" at the third
    sooner one: here, pinging every 6 s, after about 18 s idle."""
    keepalive = [
        ("grpc.keepalive_time_ms", 6_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    states: list[grpc.ChannelConnectivity] = []
    with service.channel(options=keepalive) as channel:
        channel.subscribe(states.append, try_to_connect=True)
        grpc.channel_ready_future(channel).result(timeout=10)
        assert health_status(channel) == SERVING
        time.sleep(22)
        assert health_status(channel) == SERVING
        channel.unsubscribe(states.append)
    assert states[states.index(grpc.ChannelConnectivity.READY) :] == [grpc.ChannelConnectivity.READY], states


def test_metadata_of_tens_of_kilobytes_is_taken_every_time(stub, loaded):
    """A large token or tracing headers: gRPC's core refused metadata past 8 KiB at random (more often
    the larger, up to 16 KiB), RESOURCE_EXHAUSTED for some calls and not others."""
    dataset, _ = loaded
    user = dataset.expected.users[0]
    for size in (12_000, 40_000):
        metadata = [("authorization", "Bearer " + "t" * size), ("x-trace-context", "c" * 1000)]
        for _ in range(20):
            answer = stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=30, metadata=metadata)
            got = (answer.total_workflows, answer.total_jobs, answer.total_joblogs, answer.total_job_execution_duration)
            assert got == dataset.expected.user(user), size
