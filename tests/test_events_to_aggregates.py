"""The SDK's ClickHouseSink into the real schema: events land in the landing tables and reach the aggregates."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from events import ClickHouseSink, Client, Event, InvalidEvent
from tests.intake import query


def test_events_recorded_with_the_sdk_reach_the_aggregates(analytics_db):
    user = f"sdk-{uuid.uuid4().hex[:8]}"
    started = dt.datetime(2026, 11, 20, 10, 0, 0, tzinfo=dt.UTC)
    sink = ClickHouseSink(analytics_db.url, batch_size=50, interval=0.2)
    with Client(sink).with_user_id(user).with_service("scheduler", "1.4.0", "abc123") as client:
        client.record_workflow("created", workflow_id="w-1", kind="CONTAINER")
        for n in range(3):
            job = f"j-{n}"
            client.record_job("created", workflow_id="w-1", job_id=job)
            client.record_job("started", workflow_id="w-1", job_id=job, started_at=started)
            client.record_job(
                "completed",
                workflow_id="w-1",
                job_id=job,
                started_at=started,
                completed_at=started + dt.timedelta(seconds=61, milliseconds=900),
            )
            client.record_job_log(workflow_id="w-1", job_id=job, count=10)
        client.record_analytics_compat("JOBS", user_id=user, workflow_id="w-2", job_execution_duration=9.5)
        client.record_metric("queue_depth", 4.0)
        client.record("behavioral", "login-start")
    assert sink.stats.delivered == 16 and sink.stats.rejected == 0 and sink.stats.failed == 0

    [totals] = query(analytics_db, f"SELECT * FROM analytics.user_totals WHERE user_id = '{user}'")
    numbers = [
        int(totals[name]) for name in ("total_workflows", "total_jobs", "total_joblogs", "total_job_execution_duration")
    ]
    # 61.9 s per job counts as 61; the compatibility JOBS event's 9.5 s as 9.
    assert numbers == [2, 4, 30, 3 * 61 + 9]
    telemetry = query(
        analytics_db,
        f"""SELECT event_type, event_name, attributes.service_name AS service
                                        FROM analytics.telemetry_events WHERE user_id = '{user}' ORDER BY event_type""",
    )
    assert telemetry == [
        {"event_type": "behavioral", "event_name": "login-start", "service": "scheduler"},
        {"event_type": "metric", "event_name": "queue_depth", "service": "scheduler"},
    ]


def test_an_event_clickhouses_json_type_would_refuse_is_refused_at_record_and_its_neighbours_land(analytics_db):
    user = f"sdk-{uuid.uuid4().hex[:8]}"
    sink = ClickHouseSink(analytics_db.url, interval=60.0)
    with Client(sink).with_user_id(user) as client:
        client.record("behavioral", "request", n=1, http={"method": "GET"})
        with pytest.raises(InvalidEvent, match=r'\["http.method"\] and \["http"\]\["method"\]'):
            client.record("behavioral", "request", n=2, **{"http.method": "GET", "http": {"method": "POST"}})
        client.record("behavioral", "request", n=3, **{"http.method": "POST"})
    assert sink.stats.delivered == 2 and sink.stats.rejected == 0 and sink.stats.failed == 0

    stored = query(
        analytics_db,
        f"""SELECT attributes.n::Int64 AS n, attributes.http.method::String AS method
            FROM analytics.telemetry_events WHERE user_id = '{user}' ORDER BY n""",
    )
    assert stored == [{"n": 1, "method": "GET"}, {"n": 3, "method": "POST"}]


def test_an_event_built_with_datetimes_is_sent_as_record_job_sends_it_and_lands(analytics_db):
    """Times given as datetimes in an Event's attributes are the contract's text, as with record_job:
    send() refused them as "not of type 'string'" though the event's JSON wrote them as text."""
    user = f"sdk-{uuid.uuid4().hex[:8]}"
    started = dt.datetime(2026, 11, 20, 10, 0, 0, 250_999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    completed = started + dt.timedelta(seconds=30)
    event = Event(
        "job",
        "completed",
        {"user_id": user, "workflow_id": "w-1", "job_id": "j-1", "status": "completed"}
        | {"started_at": started, "completed_at": completed},
    )
    assert event.attributes["started_at"] == "2026-11-20T08:00:00.250Z"
    assert json.loads(event.json)["completed_at"] == "2026-11-20T08:00:30.250Z"

    sink = ClickHouseSink(analytics_db.url, interval=60.0)
    with Client(sink) as client:
        assert client.send(event) is event
        recorded = client.record_job("completed", user_id=user, workflow_id="w-1", job_id="j-2", **_times(event))
    assert recorded.attributes["started_at"] == event.attributes["started_at"]
    assert sink.stats.delivered == 2 and sink.stats.rejected == 0 and sink.stats.failed == 0

    stored = query(
        analytics_db,
        f"""SELECT job_id, toString(started_at) AS started, toString(completed_at) AS completed
            FROM analytics.job_events WHERE user_id = '{user}' ORDER BY job_id""",
    )
    times = {"started": "2026-11-20 08:00:00.250", "completed": "2026-11-20 08:00:30.250"}
    assert stored == [{"job_id": "j-1", **times}, {"job_id": "j-2", **times}]


def test_a_metric_of_an_integer_just_below_int64_lands_with_its_neighbours(analytics_db):
    """A value from -9223372036854775809 to -9999999999999999999 (beyond 64 bits, 19 digits) passed
    record_metric and the intake refused it as "value is not a JSON number", with its whole batch."""
    user = f"sdk-{uuid.uuid4().hex[:8]}"
    values = [-(2**63) - 1, -(10**19) + 1, -(2**63), 2**64, 1.5]
    sink = ClickHouseSink(analytics_db.url, interval=60.0)
    with Client(sink).with_user_id(user) as client:
        for n, value in enumerate(values):
            client.record_metric("balance", value, n=n)
    assert sink.stats.delivered == len(values) and sink.stats.rejected == 0 and sink.stats.failed == 0

    stored = query(
        analytics_db,
        f"SELECT attributes.n::Int64 AS n, value FROM analytics.telemetry_events WHERE user_id = '{user}' ORDER BY n",
    )
    assert [row["n"] for row in stored] == list(range(len(values)))
    assert [float(row["value"]) for row in stored] == [float(value) for value in values]


def _times(event: Event) -> dict[str, dt.datetime]:
    return {name: dt.datetime.fromisoformat(event.attributes[name]) for name in ("started_at", "completed_at")}
