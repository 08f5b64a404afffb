"""ClickHouseSink against the real embedded ClickHouse: landing, rejections, retries and their bound.

The real landing tables live elsewhere; each test creates stand-ins (`<topic>_queue`) in its own
database and points the sink at it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.request
from urllib.parse import urlencode

import pytest
import urllib3
from clickhouse_connect.driver.exceptions import DatabaseError

from events import AnalyticsCompatEvent, ClickHouseSink, Client, Event, InvalidEvent, MemorySink
from events.clickhouse import resend_alone
from events.demo import run_demo
from events.retry import backoff_delay, is_retryable
from events.sinks import DeliveryError
from tests import embedded_server
from tests.embedded_server import free_port
from tests.events_support import JOINING_WINDOW, FakeClock, TcpForwarder, together
from tests.intake import HTTP, insert_statement

_COMMON = "event_id String, event_time String, event_type String, event_name String, user_id String"
LANDING_TABLES = {
    "workflows": f"{_COMMON}, workflow_id String, kind String",
    "jobs": f"{_COMMON}, workflow_id String, job_id String, status String, scheduled_at Nullable(String),"
    " started_at Nullable(String), completed_at Nullable(String)",
    "job_logs": f"{_COMMON}, workflow_id String, job_id String, count UInt32, stream Nullable(String),"
    " sequence Nullable(UInt64), message Nullable(String)",
    "telemetry": "message String",
    "analytics": "EventKey String, UserID String, WorkflowID String, EventType String, Data JSON",
}


def create_landing_tables(ch, constraint: str = "") -> None:
    for topic, columns in LANDING_TABLES.items():
        check = f", CONSTRAINT {constraint}" if constraint and topic == "jobs" else ""
        ch.command(f"CREATE TABLE {ch.database}.{topic}_queue ({columns}{check}) ENGINE = MergeTree ORDER BY tuple()")


def rows(ch, topic: str) -> list[dict]:
    result = ch.query(f"SELECT * FROM {ch.database}.{topic}_queue")
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def job(job_id: str, user_id: str = "u-1") -> Event:
    attributes = {"user_id": user_id, "workflow_id": "w-1", "job_id": job_id, "status": "pending"}
    return Event("job", "created", {**attributes, "scheduled_at": None, "started_at": None, "completed_at": None})


class Reported:
    """An on_error callback that remembers what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, events, error):
        self.calls.append((events, error))

    @property
    def events(self):
        return [event for events, _ in self.calls for event in events]


def test_events_of_every_topic_land_in_their_landing_tables(clickhouse, ch):
    create_landing_tables(ch)
    sink = ClickHouseSink(clickhouse.url, database=ch.database)
    with Client(sink).with_service("scheduler", "1.4.0") as client:
        workflow = client.record_workflow("created", user_id="u-1", workflow_id="w-1", kind="CONTAINER")
        started = client.record_job(
            "started", user_id="u-1", workflow_id="w-1", job_id="j-1", started_at="2026-11-24T08:00:01.250Z"
        )
        line = client.record_job_log(user_id="u-1", workflow_id="w-1", job_id="j-1", stream="stderr", message="boom")
        metric = client.record_metric("queue_depth", 3.5, labels={"queue": "default"})
        compat = client.record_analytics_compat("LOGS", user_id="u-1", workflow_id="w-1", count=40)

    assert sink.stats.delivered == 5 and sink.stats.rejected == sink.stats.failed == 0
    (workflow_row,) = rows(ch, "workflows")
    assert workflow_row == {k: v for k, v in workflow.to_dict().items() if not k.startswith("service_")}
    (job_row,) = rows(ch, "jobs")
    assert (job_row["event_id"], job_row["status"], job_row["started_at"], job_row["completed_at"]) == (
        started.event_id,
        "running",
        "2026-11-24T08:00:01.250Z",
        None,
    )
    (log_row,) = rows(ch, "job_logs")
    assert (log_row["event_id"], log_row["count"], log_row["stream"], log_row["message"]) == (
        line.event_id,
        1,
        "stderr",
        "boom",
    )
    (telemetry_row,) = rows(ch, "telemetry")
    assert json.loads(telemetry_row["message"]) == metric.to_dict()  # nothing of a free-form event is lost
    (compat_row,) = rows(ch, "analytics")
    assert compat_row["EventKey"] == compat.event_key and compat_row["Data"] == {"count": 40}


def test_a_batch_the_server_rejects_is_reported_once_not_retried_and_other_tables_still_get_theirs(clickhouse, ch):
    create_landing_tables(ch, constraint="no_blocked_users CHECK user_id != 'blocked'")
    reported = Reported()
    sink = ClickHouseSink(clickhouse.url, database=ch.database, on_error=reported, sleep=lambda s: None)
    jobs = [job("j-1"), job("j-2", user_id="blocked"), job("j-3")]
    workflow = Event("workflow", "created", {"user_id": "u-1", "workflow_id": "w-1", "kind": "HEARTBEAT"})

    sink.emit([*jobs, workflow])

    ((events, error),) = reported.calls
    assert events == jobs  # the whole batch, so the sender can fix and resend it
    assert (error.code, error.retryable) == (469, False)  # VIOLATED_CONSTRAINT, reported with HTTP 500
    assert "no_blocked_users" in str(error)
    assert sink.stats.rejected == 3 and sink.stats.retries == 0 and sink.stats.delivered == 1
    assert rows(ch, "jobs") == []
    assert [row["workflow_id"] for row in rows(ch, "workflows")] == ["w-1"]


def test_a_large_batch_goes_in_pieces_and_only_the_bad_piece_is_rejected(clickhouse, ch):
    create_landing_tables(ch, constraint="no_blocked_users CHECK user_id != 'blocked'")
    reported = Reported()
    sink = ClickHouseSink(clickhouse.url, database=ch.database, batch_size=2, on_error=reported)
    jobs = [job("j-1"), job("j-2"), job("j-3"), job("j-4", user_id="blocked")]

    sink.emit(jobs)

    assert reported.events == jobs[2:]
    assert sorted(row["job_id"] for row in rows(ch, "jobs")) == ["j-1", "j-2"]


def test_without_a_callback_rejected_events_are_kept_for_the_caller(clickhouse, ch):
    sink = ClickHouseSink(clickhouse.url, database=ch.database)  # no landing tables at all
    events = [job("j-1"), job("j-2")]

    sink.emit(events)

    assert sink.take_undelivered() == events
    assert sink.take_undelivered() == []
    assert sink.stats.rejected == 2


def test_a_connection_error_is_retried_with_backoff_until_the_server_answers(clickhouse, ch):
    create_landing_tables(ch)
    port = free_port()  # nothing listens here until the first backoff
    delays, forwarders = [], []

    def sleep(seconds):
        delays.append(seconds)
        if not forwarders:
            forwarders.append(TcpForwarder(port, clickhouse.port))

    sink = ClickHouseSink(f"http://127.0.0.1:{port}", database=ch.database, backoff=0.5, sleep=sleep)
    try:
        sink.emit([job("j-1")])
    finally:
        for forwarder in forwarders:
            forwarder.close()

    assert delays == [0.5]
    assert sink.stats.retries == 1 and sink.stats.delivered == 1
    assert [row["job_id"] for row in rows(ch, "jobs")] == ["j-1"]


def test_retries_stop_at_the_bound_and_the_events_are_reported(ch, refused_port):
    delays = []
    reported = Reported()
    sink = ClickHouseSink(
        f"http://127.0.0.1:{refused_port}",
        database=ch.database,
        max_retries=4,
        backoff=0.25,
        max_backoff=1.0,
        on_error=reported,
        sleep=delays.append,
    )
    events = [job("j-1"), job("j-2")]

    sink.emit(events)

    assert delays == [0.25, 0.5, 1.0, 1.0]  # exponential, capped
    ((given, error),) = reported.calls
    assert given == events and error.retryable and error.status is None
    assert sink.stats.failed == 2 and sink.stats.retries == 4 and sink.stats.delivered == 0


def test_close_cuts_a_backoff_short_and_reports_the_batch(ch, refused_port):
    retrying = threading.Event()

    class RetryWatch(logging.Handler):
        def emit(self, record):
            if "retry" in record.getMessage():
                retrying.set()

    watch = RetryWatch()
    logging.getLogger("events.clickhouse").addHandler(watch)
    reported = Reported()
    sink = ClickHouseSink(
        f"http://127.0.0.1:{refused_port}", database=ch.database, backoff=600.0, max_backoff=600.0, on_error=reported
    )
    sender = threading.Thread(target=sink.emit, args=([job("j-1")],))
    try:
        sender.start()
        assert retrying.wait(30)  # the sink is now waiting out a ten-minute backoff

        sink.close()
        sender.join(30)
    finally:
        logging.getLogger("events.clickhouse").removeHandler(watch)

    assert not sender.is_alive()
    assert [event.attributes["job_id"] for event in reported.events] == ["j-1"]
    assert sink.stats.failed == 1


def test_a_closed_sink_reports_instead_of_sending(clickhouse, ch):
    create_landing_tables(ch)
    reported = Reported()
    sink = ClickHouseSink(clickhouse.url, database=ch.database, on_error=reported)
    sink.close()
    sink.close()

    sink.emit([job("j-1")])

    assert len(reported.events) == 1 and "closed" in str(reported.calls[0][1])
    assert rows(ch, "jobs") == []


def test_an_on_error_callback_that_raises_does_not_lose_the_events(clickhouse, ch):
    def broken(events, error):
        raise RuntimeError("callback bug")

    sink = ClickHouseSink(clickhouse.url, database=ch.database, on_error=broken)

    sink.emit([job("j-1")])  # no landing tables: rejected

    assert [event.attributes["job_id"] for event in sink.take_undelivered()] == ["j-1"]


def test_the_database_name_must_be_an_identifier():
    with pytest.raises(ValueError, match="database"):
        ClickHouseSink(database="analytics; DROP TABLE x")


def test_compatibility_events_are_routed_to_the_analytics_table(clickhouse, ch):
    create_landing_tables(ch)
    sink = ClickHouseSink(clickhouse.url, database=ch.database)

    sink.emit([AnalyticsCompatEvent("WORKFLOWS", "u-1", "w-1", {"kind": "HEARTBEAT"}, event_key="k-1")])

    assert rows(ch, "analytics") == [
        {
            "EventKey": "k-1",
            "UserID": "u-1",
            "WorkflowID": "w-1",
            "EventType": "WORKFLOWS",
            "Data": {"kind": "HEARTBEAT"},
        }
    ]


# -- many producers: joined inserts ------------------------------------------------------------------


def emit_together(sinks: list[ClickHouseSink], batches: list[list[Event]]) -> None:
    """Each sink emits its batch from a thread of its own, all at the same moment."""
    together([lambda sink=sink, batch=batch: sink.emit(batch) for sink, batch in zip(sinks, batches, strict=True)])


def parts(ch, topic: str) -> int:
    return ch.command(
        f"SELECT count() FROM system.parts WHERE database = '{ch.database}' AND table = '{topic}_queue' AND active"
    )


@pytest.mark.parametrize(("async_insert", "inserts"), [(True, 1), (False, 6)])
def test_the_small_batches_of_many_sinks_are_joined_into_one_insert(clickhouse, ch, async_insert, inserts):
    create_landing_tables(ch)
    ch.command(f"SYSTEM STOP MERGES {ch.database}.jobs_queue")  # one part per insert stays one
    sinks = [
        ClickHouseSink(clickhouse.url, database=ch.database, async_insert=async_insert, settings=JOINING_WINDOW)
        for _ in range(6)
    ]

    emit_together(sinks, [[job(f"j-{n}-1"), job(f"j-{n}-2")] for n in range(6)])

    assert [sink.stats.delivered for sink in sinks] == [2] * 6  # each answered after the insert
    assert len(rows(ch, "jobs")) == 12
    assert parts(ch, "jobs") == inserts


def refusals(clickhouse, code: int) -> float:
    """Inserts the server has refused with `code` so far, from its Prometheus metrics."""
    text = urllib.request.urlopen(f"{clickhouse.url}/metrics", timeout=10).read().decode()
    wanted = f'analytics_http_errors_total{{code="{code}",kind="insert"}} '
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted))


def test_a_refused_batch_among_joined_ones_gets_its_own_verdict_and_the_others_land(clickhouse, ch):
    create_landing_tables(ch, constraint="no_blocked_users CHECK user_id != 'blocked'")
    refused_before = refusals(clickhouse, 469)
    good, bad = Reported(), Reported()
    sinks = [
        ClickHouseSink(clickhouse.url, database=ch.database, on_error=reported, settings=JOINING_WINDOW)
        for reported in (good, bad)
    ]
    refused = [job("j-3"), job("j-4", user_id="blocked")]

    emit_together(sinks, [[job("j-1"), job("j-2")], refused])

    assert good.calls == [] and sinks[0].stats.delivered == 2 and sinks[0].stats.resent_alone == 0
    ((events, error),) = bad.calls
    assert events == refused and error.code == 469 and "no_blocked_users" in str(error)
    assert sinks[1].stats.resent_alone == 1 and sinks[1].stats.rejected == 2
    assert refusals(clickhouse, 469) - refused_before == 2  # joined, then alone
    assert sorted(row["job_id"] for row in rows(ch, "jobs")) == ["j-1", "j-2"]


def test_only_a_refusal_of_a_joined_insert_is_sent_again_alone():
    refused = DeliveryError("HTTP 500: constraint", retryable=False, status=500, code=469)
    passing = DeliveryError("HTTP 500: too many parts", retryable=True, status=500, code=252)
    assert resend_alone(refused, joined=True)
    assert not resend_alone(refused, joined=False)  # its verdict was its own already
    assert not resend_alone(passing, joined=True)  # retried as it was


@pytest.mark.parametrize(
    ("status", "code"), [(403, 516), (404, 60), (404, 81), (500, 164), (400, 62), (401, 194), (403, None)]
)
def test_a_refusal_of_the_request_itself_is_not_sent_again_alone(status, code):
    """A wrong password or an unknown table refuses the batch's own insert too: one request more."""
    refused = DeliveryError(f"HTTP {status}", retryable=False, status=status, code=code)
    assert not resend_alone(refused, joined=True)


def test_a_wrong_password_costs_one_request_not_two(clickhouse, ch):
    refused_before = refusals(clickhouse, 516)
    reported = Reported()
    sink = ClickHouseSink(clickhouse.url, database=ch.database, password="wrong", on_error=reported)
    sink.emit([job("j-1")])
    sink.close()
    ((events, error),) = reported.calls
    assert error.code == 516 and sink.stats.rejected == 1 and sink.stats.resent_alone == 0
    assert refusals(clickhouse, 516) - refused_before == 1


@pytest.mark.parametrize("name", ["query", "async_insert", "wait_for_async_insert", "max_threads; DROP"])
def test_settings_cannot_replace_the_statement_or_the_sinks_own(name):
    with pytest.raises(ValueError, match=name.split(";")[0]):
        ClickHouseSink(settings={name: "0"})


# -- the one retry decision ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (None, None, True),  # no answer: refused, reset, timed out
        (500, None, True),
        (502, None, True),  # a proxy in front of ClickHouse
        (503, None, True),
        (408, None, True),
        (429, None, True),
        (400, None, False),
        (401, None, False),
        (404, None, False),
        (500, 252, True),  # TOO_MANY_PARTS
        (500, 241, True),  # MEMORY_LIMIT_EXCEEDED
        (500, 159, True),  # TIMEOUT_EXCEEDED
        (503, 202, True),  # TOO_MANY_SIMULTANEOUS_QUERIES
        (500, 243, True),  # NOT_ENOUGH_SPACE: a full disk, freed or merged later
        (500, 173, True),  # CANNOT_ALLOCATE_MEMORY
        (503, 76, True),  # CANNOT_OPEN_FILE: the server out of file descriptors
        (500, 298, True),  # CANNOT_PIPE
        (500, 460, True),  # CANNOT_CREATE_TIMER
        (500, 573, True),  # EPOLL_ERROR
        (500, 469, False),  # VIOLATED_CONSTRAINT: status 500, but permanent
        (500, 1002, False),  # UNKNOWN_EXCEPTION
        (400, 27, False),  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        (404, 60, False),  # UNKNOWN_TABLE
        (403, 516, False),  # AUTHENTICATION_FAILED
    ],
)
def test_is_retryable(status, code, retryable):
    assert is_retryable(status, code) is retryable


def test_backoff_doubles_up_to_its_cap():
    assert [backoff_delay(attempt, 0.25, 2.0) for attempt in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


ATTRIBUTES = [
    {"http.method": "GET", "http": {"method": "POST"}},
    {"a": {"b.c": 1, "b": {"c": 2}}},
    {"a.": 1, "a": {"": 2}},
    {"a.b": [], "a": {"b": 1}},
    {"x": [[{"p.q": 1, "p": {"q": 2}}]]},
    {"a": 1, "a.b": 2},
    {"a.b": 1, "a": {"b": {"c": 1}}},
    {"a.b": None, "a": {"b": 1}},
    {"a.b": {}, "a": {"b": 1}},
    {"x": [{"p.q": 1}, {"p": {"q": 2}}]},
]


@pytest.mark.parametrize("attributes", ATTRIBUTES, ids=[json.dumps(a) for a in ATTRIBUTES])
def test_the_sdk_refuses_the_dotted_keys_clickhouses_json_type_refuses(ch, attributes):
    message = Event("behavioral", "x", attributes).json.decode()
    try:
        ch.query("SELECT toString(CAST({message:String} AS JSON))", parameters={"message": message})
        clickhouse_refuses = False
    except DatabaseError as error:
        assert "Duplicate path" in str(error)
        clickhouse_refuses = True

    try:
        Event.from_dict(json.loads(message))
        sdk_refuses = False
    except InvalidEvent:
        sdk_refuses = True

    assert sdk_refuses == clickhouse_refuses


def test_a_demo_stream_lands_whole(clickhouse, ch):
    create_landing_tables(ch)
    clock = FakeClock()
    sink = ClickHouseSink(clickhouse.url, database=ch.database, batch_size=500)
    client = Client(sink, clock=clock, queue_size=100_000, background=False)

    counts = run_demo(client, rate=100, users=5, duration=30, seed=11, clock=clock, sleep=clock.advance, tick=0.25)
    client.close()

    assert sink.stats.rejected == sink.stats.failed == 0
    for topic in LANDING_TABLES:
        landed = ch.command(f"SELECT count() FROM {ch.database}.{topic}_queue")
        assert landed == counts[topic] > 0, topic  # duplicates included: deduplication is downstream


# Attributes only Python can give: a tuple is written as an array, and a key that is not text as
# json.dumps spells it, so these may make one path twice, or one key twice, in the JSON the SDK sends.
PYTHON_ATTRIBUTES = [
    {"v": ({"a.b": 1, "a": {"b": 2}},)},
    {"v": [({"p.q": 1, "p": {"q": 2}},)]},
    {"v": {True: "a", "true": "b"}},
    {"v": {None: "a", "null": "b"}},
    {"v": {False: "a", "false": "b"}},
    {"v": {True: None, "true": 1}},
    {True: None, "true": 1},
    {1: "a", "1": "b"},
    {"v": {2: "a", "2.x": "b"}},
    {"v": (1, {"a": 1}, ({"a.b": 1},))},
    {"v": {True: "a", 1.5: "b", None: "c"}},
]


@pytest.mark.parametrize("attributes", PYTHON_ATTRIBUTES, ids=[repr(a) for a in PYTHON_ATTRIBUTES])
def test_the_sdk_refuses_what_the_intake_refuses_of_the_json_it_writes_for_python_values(analytics_db, attributes):
    """Such an event passed record(), and the intake refused it with every other event of its batch."""
    event = Event("behavioral", "python-values", attributes)  # made, not checked: the JSON record() would send
    answer = post_json_lines(analytics_db, "telemetry", [event.json])
    intake_refuses = answer.status != 200
    if intake_refuses:
        assert b"Duplicate path" in answer.data or b"duplicate key" in answer.data, answer.data

    client = Client(MemorySink(), background=False)
    try:
        client.send(Event("behavioral", "python-values", attributes))
        sdk_refuses = False
    except InvalidEvent as error:
        assert "JSON type reads as the same path" in str(error) or "JSON spells alike" in str(error), error
        sdk_refuses = True

    assert sdk_refuses == intake_refuses


def post_json_lines(server, topic: str, lines: list[bytes]):
    return HTTP.request(
        "POST", f"{server.url}/?{urlencode({'query': insert_statement(topic)})}", body=b"\n".join(lines)
    )


UNUSABLE_PARAMETERS = [
    ({"timeout": float("nan")}, "timeout must be a number of seconds, more than 0 and at most 86400, got nan"),
    ({"timeout": 1e300}, "timeout must be a number of seconds, more than 0 and at most 86400, got 1e+300"),
    ({"timeout": 0}, "timeout must be a number of seconds, more than 0"),
    ({"timeout": "10"}, "timeout must be a number of seconds"),
    ({"backoff": -1.0}, "backoff must be a number of seconds, 0 or more"),
    ({"max_backoff": float("inf")}, "max_backoff must be a number of seconds, 0 or more and at most 86400"),
    ({"max_backoff": float("nan")}, "max_backoff must be a number of seconds"),
    ({"max_retries": 1.5}, "max_retries must be a whole number, 0 or more, got 1.5"),
    ({"max_retries": -1}, "max_retries must be a whole number, 0 or more, got -1"),
]


@pytest.mark.parametrize(("parameters", "named"), UNUSABLE_PARAMETERS, ids=[repr(p) for p, _ in UNUSABLE_PARAMETERS])
def test_durations_and_counts_a_sink_cannot_use_are_refused_by_name(parameters, named):
    """ClickHouseSink(timeout=nan) or a timeout that overflows a socket's took every event: each request
    raised in urllib3, the client counted the batch as lost, and close() said True."""
    with pytest.raises(ValueError, match=re.escape(named)):
        ClickHouseSink("http://127.0.0.1:8123", **parameters)


def test_a_long_outage_with_many_retries_waits_the_longest_backoff_and_does_not_raise():
    """The backoff doubled past what a float holds after 1,024 retries: the insert raised and its
    batch was lost."""
    assert backoff_delay(1024, 0.25, 8.0) == backoff_delay(100_000, 0.25, 8.0) == 8.0


NON_ASCII_PASSWORD = "пароль-ü"


@pytest.fixture
def password_server(tmp_path):
    """An embedded ClickHouse of the test's own whose default user has a password beyond ASCII."""
    server = embedded_server.start(tmp_path / "data", password=NON_ASCII_PASSWORD)
    try:
        yield server
    finally:
        server.stop()


def test_a_password_beyond_ascii_reaches_the_server_and_the_events_land(password_server):
    """Every request raised UnicodeEncodeError (a header's value is Latin-1): the client counted each
    batch as lost, and close() said True."""
    admin = password_server.client()
    admin.command("CREATE DATABASE pw")
    admin.command("CREATE TABLE pw.telemetry_queue (message String) ENGINE = MergeTree ORDER BY tuple()")
    sink = ClickHouseSink(password_server.url, database="pw", password=NON_ASCII_PASSWORD, async_insert=False)
    client = Client(sink)
    recorded = [client.record("behavioral", "login-start", n=n) for n in range(3)]

    assert client.close(30)

    assert (client.stats.failed, sink.stats.delivered) == (0, 3), (client.stats, sink.stats)
    landed = admin.query("SELECT JSONExtractString(message, 'event_id') FROM pw.telemetry_queue").result_rows
    assert sorted(row[0] for row in landed) == sorted(event.event_id for event in recorded)
    # The server reads X-ClickHouse-Key's bytes as UTF-8, as ClickHouse does (curl sends them so).
    utf8_key = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": NON_ASCII_PASSWORD.encode()}
    answer = urllib3.request("POST", password_server.url + "/", body=b"SELECT 7", headers=utf8_key)
    assert (answer.status, answer.data) == (200, b"7\n")
    # A wrong one beyond ASCII is the server's refusal, named, not an error of the client's.
    reported = Reported()
    wrong = ClickHouseSink(password_server.url, database="pw", password="пароль-x", on_error=reported)
    wrong.emit([Event("behavioral", "refused")])
    ((_, error),) = reported.calls
    assert wrong.stats.rejected == 1 and error.code == 516 and "Authentication failed" in str(error)
