"""The events client against in-memory sinks: the envelope, attributes and validation
(delivery: batching, drops and closing are in test_events_delivery.py).

Without a consumer thread (background=False) the test drives delivery itself with pump(), flush()
and close(), and a FakeClock decides when a batch is old enough.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from events import (
    InvalidEvent,
)
from tests.events_support import START, FakeClock, sync_client

# -- the envelope and attributes -----------------------------------------------------------------


def test_an_event_has_the_envelope_the_clocks_time_and_the_clients_attributes():
    clock = FakeClock(START + 0.125)
    client, sink = sync_client(clock=clock)
    service = client.with_service("scheduler", "1.4.0", "abc123").with_install_id("i-1").with_is_dev()

    event = service.record("behavioral", "login-start", user_id="u-1")
    client.flush()

    assert sink.events == [event]
    assert json.loads(event.json) == {
        "event_id": event.event_id,
        "event_time": "2026-11-24T08:00:00.125Z",
        "event_type": "behavioral",
        "event_name": "login-start",
        "service_name": "scheduler",
        "service_version": "1.4.0",
        "service_commit": "abc123",
        "install_id": "i-1",
        "is_dev": True,
        "user_id": "u-1",
    }
    assert event.topic == "telemetry"


def test_with_attributes_returns_a_copy_and_leaves_the_original_alone():
    client, sink = sync_client()
    copy = client.with_attributes(region="eu").with_user_id("u-1")

    copy.record("behavioral", "a")
    client.record("behavioral", "b")
    client.flush()

    first, second = sink.events
    assert first.attributes == {"region": "eu", "user_id": "u-1"}
    assert second.attributes == {}
    assert client.stats.accepted == 2  # copies share the queue and the counters


def test_event_ids_are_unique():
    client, sink = sync_client()
    for _ in range(500):
        client.record("behavioral", "click")
    client.flush()
    assert len({event.event_id for event in sink.events}) == 500


def test_typed_helpers_build_contract_events_and_take_the_user_from_the_client():
    client, sink = sync_client()
    user = client.with_user_id("u-1")
    started = datetime(2026, 11, 24, 8, 0, 1, 250_000, tzinfo=UTC)
    ended = started.astimezone(timezone(timedelta(hours=2))) + timedelta(seconds=3)

    user.record_workflow("created", workflow_id="w-1", kind="HEARTBEAT")
    user.record_job("completed", workflow_id="w-1", job_id="j-1", started_at=started, completed_at=ended)
    user.record_job_log(workflow_id="w-1", job_id="j-1", stream="stdout", sequence=0, message="hello")
    user.record_job_log(workflow_id="w-1", job_id="j-1", count=40)
    client.flush()

    workflow, job, line, burst = (json.loads(event.json) for event in sink.events)
    assert (workflow["event_type"], workflow["user_id"], workflow["kind"]) == ("workflow", "u-1", "HEARTBEAT")
    assert job["status"] == "completed"
    assert (job["scheduled_at"], job["started_at"], job["completed_at"]) == (
        None,
        "2026-11-24T08:00:01.250Z",
        "2026-11-24T08:00:04.250Z",  # another offset, written in UTC
    )
    assert (line["count"], line["stream"], line["sequence"], line["message"]) == (1, "stdout", 0, "hello")
    assert burst["count"] == 40 and "message" not in burst
    assert [event.topic for event in sink.events] == ["workflows", "jobs", "job_logs", "job_logs"]
    assert [event.key for event in sink.events] == ["w-1"] * 4


def test_record_metric_is_a_telemetry_event_with_a_value():
    client, sink = sync_client()
    event = client.record_metric("queue_depth", 12.5, service_name="scheduler")
    assert (event.event_type, event.event_name, event.attributes["value"], event.topic) == (
        "metric",
        "queue_depth",
        12.5,
        "telemetry",
    )


def test_record_raw_sends_the_event_as_given():
    client, sink = sync_client()
    raw = {
        "event_id": "e-1",
        "event_time": "2026-11-24T10:00:00.5+02:00",
        "event_type": "log",
        "event_name": "browser-error",
        "message": "TypeError",
    }

    client.with_user_id("not-added").record_raw(raw)
    client.flush()

    (event,) = sink.events
    assert json.loads(event.json) == {**raw, "event_time": "2026-11-24T08:00:00.500Z"}


@pytest.mark.parametrize("missing", ["event_id", "event_time", "event_type", "event_name"])
def test_record_raw_rejects_an_event_without_an_envelope_field_and_names_it(missing):
    client, sink = sync_client()
    raw = {"event_id": "e-1", "event_time": "2026-11-24T08:00:00Z", "event_type": "log", "event_name": "x"}
    del raw[missing]

    with pytest.raises(InvalidEvent) as error:
        client.record_raw(raw)

    assert error.value.field == missing
    assert missing in str(error.value)
    assert client.stats.accepted == 0


def test_analytics_compatibility_events_keep_the_schedulers_shape():
    client, sink = sync_client()
    event = client.record_analytics_compat("JOBS", user_id="u-1", workflow_id="w-1", job_execution_duration=12)
    client.flush()

    assert sink.events == [event]
    assert json.loads(event.json) == {
        "EventKey": event.event_key,
        "UserID": "u-1",
        "WorkflowID": "w-1",
        "EventType": "JOBS",
        "Data": {"job_execution_duration": 12},
    }
    assert (event.topic, event.key) == ("analytics", "w-1")


# -- validation ----------------------------------------------------------------------------------

NAIVE = datetime(2026, 11, 24, 8, 0, 0)
T0, T1 = "2026-11-24T08:00:01Z", "2026-11-24T08:00:02Z"

INVALID = {
    "workflow without kind": (lambda c: c.record("workflow", "created", user_id="u", workflow_id="w"), "kind"),
    "unknown workflow event": (
        lambda c: c.record_workflow("exploded", user_id="u", workflow_id="w", kind="HEARTBEAT"),
        "event_name",
    ),
    "empty workflow id": (lambda c: c.record_workflow("created", user_id="u", workflow_id="", kind="K"), "workflow_id"),
    "job started without started_at": (
        lambda c: c.record_job("started", user_id="u", workflow_id="w", job_id="j"),
        "started_at",
    ),
    "job status contradicting the event": (
        lambda c: c.record_job("started", user_id="u", workflow_id="w", job_id="j", started_at=T0, status="pending"),
        "status",
    ),
    "job ending before it started": (
        lambda c: c.record_job("completed", user_id="u", workflow_id="w", job_id="j", started_at=T1, completed_at=T0),
        "completed_at",
    ),
    "job timestamp that is not ISO 8601": (
        lambda c: c.record_job("created", user_id="u", workflow_id="w", job_id="j", scheduled_at="tomorrow"),
        "scheduled_at",
    ),
    "job without a user anywhere": (lambda c: c.record_job("created", workflow_id="w", job_id="j"), "user_id"),
    "log count of zero": (lambda c: c.record_job_log(user_id="u", workflow_id="w", job_id="j", count=0), "count"),
    "log count that is a bool": (
        lambda c: c.record_job_log(user_id="u", workflow_id="w", job_id="j", count=True),
        "count",
    ),
    "metric value that is text": (lambda c: c.record("metric", "m", value="12"), "value"),
    "metric without a value": (lambda c: c.record("metric", "m"), "value"),
    "metric value NaN": (lambda c: c.record_metric("m", math.nan), "value"),
    "attribute that is not JSON": (lambda c: c.record("behavioral", "x", handle=object()), "handle"),
    "naive datetime attribute": (lambda c: c.record("behavioral", "x", seen_at=NAIVE), "seen_at"),
    "naive event time": (lambda c: c.record("behavioral", "x", event_time=NAIVE), "event_time"),
    "event time as a number of seconds": (lambda c: c.record("behavioral", "x", event_time=1764576000), "event_time"),
    "event time without offset": (
        lambda c: c.record("behavioral", "x", event_time="2026-11-24T08:00:00"),
        "event_time",
    ),
    "event time that is not a day": (
        lambda c: c.record("behavioral", "x", event_time="2026-02-30T08:00:00Z"),
        "event_time",
    ),
    "event time past the days the aggregates hold": (
        lambda c: c.record_job_log(user_id="u", workflow_id="w", job_id="j", event_time="2250-01-01T00:00:00Z"),
        "event_time",
    ),
    "event time before 1970 in UTC": (
        lambda c: c.record("behavioral", "x", event_time=datetime(1969, 12, 31, 23, 0, tzinfo=UTC)),
        "event_time",
    ),
    # No instant in UTC (OverflowError, where a caller catches InvalidEvent).
    "event time of datetime.min east of UTC": (
        lambda c: c.record("behavioral", "x", event_time=datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))),
        "event_time",
    ),
    "job time of datetime.max west of UTC": (
        lambda c: c.record_job(
            "started",
            user_id="u",
            workflow_id="w",
            job_id="j",
            started_at=datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
        ),
        "started_at",
    ),
    "envelope field as attribute": (lambda c: c.record("behavioral", "x", event_id="mine"), "event_id"),
    "envelope field in with_attributes": (lambda c: c.with_attributes(event_type="job"), "event_type"),
    "event type that is not an identifier": (lambda c: c.record("Bad Type", "x"), "event_type"),
    "compat event without its data": (
        lambda c: c.record_analytics_compat("LOGS", user_id="u", workflow_id="w"),
        "Data.count",
    ),
    "compat event of an unknown type": (
        lambda c: c.record_analytics_compat("RUNS", user_id="u", workflow_id="w", count=1),
        "EventType",
    ),
    "telemetry keys that are one JSON path": (
        lambda c: c.record("behavioral", "x", **{"http.method": "GET", "http": {"method": "POST"}}),
        "http.method",
    ),
    "nested keys that are one JSON path": (
        lambda c: c.record("behavioral", "x", request={"http": {"method": "GET"}, "http.method": "POST"}),
        "request.http.method",
    ),
    "keys that are one JSON path in an array's object": (
        lambda c: c.record("behavioral", "x", items=[{"id": 1}, {"p.q": 1, "p": {"q": [2]}}]),
        "items.1.p.q",
    ),
    "compat data keys that are one JSON path": (
        lambda c: c.record_analytics_compat("LOGS", user_id="u", workflow_id="w", count=1, **{"a.b": 1, "a": {"b": 2}}),
        "Data.a.b",
    ),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_an_invalid_event_raises_naming_the_field_and_is_not_queued(case):
    record, field = INVALID[case]
    client, sink = sync_client()

    with pytest.raises(InvalidEvent) as error:
        record(client)

    assert error.value.field == field
    assert field in str(error.value)
    assert client.stats.accepted == 0


def test_keys_clickhouse_would_read_as_one_path_are_both_named():
    client, _ = sync_client()

    with pytest.raises(InvalidEvent) as error:
        client.record("behavioral", "request", **{"http.method": "GET", "http": {"method": "POST"}})

    assert str(error.value) == (
        "invalid behavioral event 'request': http.method is written by two keys, "
        '["http.method"] and ["http"]["method"], which ClickHouse\'s JSON type reads as the same path '
        "(a dot in a key is nesting) and refuses as a duplicate"
    )


def test_keys_with_dots_that_make_distinct_paths_are_accepted():
    client, sink = sync_client()
    client.record("behavioral", "x", **{"a": 1, "a.b": 2})  # a leaf and a path below it
    client.record("behavioral", "x", **{"a.b": None, "a": {"b": 1}})  # null writes no path
    client.record("behavioral", "x", **{"a.b": {}, "a": {"b": 1}})  # nor does an empty object
    client.record("behavioral", "x", items=[{"p.q": 1}, {"p": {"q": 2}}])  # each object in an array is its own

    client.flush()

    assert len(sink.events) == 4
