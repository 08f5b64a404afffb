"""One corpus of events for the contract: valid events of every topic, every rule broken, odd types.

Each entry is (topic, event): the topic it is sent to, and the event as a producer's JSON would
decode. Valid events come from the demo generator; the rest are mutations of them (a field
removed, or replaced by an odd value) and hand-made cases (numbers as strings, booleans and
objects where strings belong, unicode, huge and out-of-range numbers, bad timestamps, both
spellings of job statuses, the scheduler's keyless events).
"""

from __future__ import annotations

import copy
import json
import random

from events.contract import is_compat_message, topic_for
from events.demo import DemoGenerator
from tests.events_support import START

ODD_VALUES = [
    None,
    "",
    "x",
    "5",
    "1.5",
    "true",
    0,
    -1,
    1,
    1.0,
    1.5,
    True,
    False,
    {},
    {"nested": "object"},
    [],
    ["a"],
    2**32,
    2**63,
    2**64,
    10**30,
    1e308,
    -1e308,
    "2026-11-24T08:00:00Z",
    "2026-11-24T08:00:00.123456789+05:30",
    "2026-11-24 08:00:00",
    "2026-11-24T08:00:00",
    "2026-02-30T08:00:00Z",
    "2026-11-24T24:00:00Z",
    "2026-11-24T08:00:60Z",
    "2026-11-24T08:00:00+25:00",
    "1899-12-31T23:59:59Z",
    "2300-01-01T00:00:00Z",
    # The days the aggregates hold (ClickHouse's Date), at their edges, in UTC and across an offset.
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:30:00+01:00",
    "1970-01-01T01:00:00+01:00",
    "1969-12-31T20:00:00-05:00",
    "1969-12-31T18:59:59.999-05:00",
    "2149-06-06T23:59:59.999Z",
    "2149-06-06T23:59:59.9999Z",
    "2149-06-07T00:00:00Z",
    "2149-06-06T23:00:00-02:00",
    "2250-01-01T10:00:00Z",
    "1950-01-01T10:00:00Z",
    "2026-11-24T08:00:00Z\n",
    " 2026-11-24T08:00:00Z",
    "pending",
    "PENDING",
    "Pending",
    "CANCELED",
    "canceled",
    "cancelled ",
    "RUNNING",
    "héllo wörld ✓ 🚀",
    "שלום",
    "a\u0000b",
    "line\nbreak",
    "\ud800",
    "x" * 100_000,
    "WORKFLOWS",
    "JOBS",
    "LOGS",
    "job",
    "job\n",
    "Job",
    "metric",
]


def _valid_events(seed: int) -> list[dict]:
    generator = DemoGenerator(users=40, rate=60.0, start=START, seed=seed, legacy_share=0.4)
    return [event.to_dict() for event in generator.advance(START + 90)]


def topic_of(event: dict) -> str:
    if is_compat_message(event):
        return "analytics"
    event_type = event.get("event_type")
    return topic_for(event_type) if isinstance(event_type, str) else "telemetry"


def _handmade(valid: list[dict]) -> list[tuple[str, dict]]:
    first = {}
    for event in valid:
        first.setdefault((topic_of(event), event.get("event_name") or event.get("EventType")), event)
    job = next(e for (t, _), e in first.items() if t == "jobs" and e["event_name"] == "completed")
    log = next(e for (t, _), e in first.items() if t == "job_logs")
    compat = next(e for (t, _), e in first.items() if t == "analytics")
    metric = {
        "event_id": "m-1",
        "event_time": "2026-11-24T08:00:00Z",
        "event_type": "metric",
        "event_name": "cpu",
        "value": 0.5,
        "service_name": "svc",
        "details": {"deep": [1, {"x": None}]},
    }
    cases = [
        ("jobs", {**job, "status": "COMPLETED"}),
        ("jobs", {**job, "status": "Completed"}),
        ("jobs", {**job, "event_name": "cancelled", "status": "CANCELED"}),
        ("jobs", {**job, "event_name": "cancelled", "status": "canceled"}),
        ("jobs", {**job, "event_name": "failed", "status": "FAILED"}),
        ("jobs", {**job, "event_name": "failed", "status": "FAILED", "started_at": None}),
        ("jobs", {**job, "completed_at": "2000-01-01T00:00:00Z"}),
        # Kept to the millisecond, these two are the same time: a duration of 0, not a negative one.
        ("jobs", {**job, "started_at": "2026-11-24T08:00:00.1239Z", "completed_at": "2026-11-24T08:00:00.1231Z"}),
        ("jobs", {**job, "started_at": "2026-11-24T08:00:00.124Z", "completed_at": "2026-11-24T08:00:00.1239Z"}),
        ("jobs", {**job, "unknown_extra": {"a": 1}}),
        ("job_logs", {k: v for k, v in log.items() if k != "count"}),
        ("job_logs", {**log, "count": None}),
        ("job_logs", {**log, "count": "5"}),
        ("job_logs", {**log, "count": 5.0}),
        ("job_logs", {**log, "count": 4294967295}),
        ("job_logs", {**log, "count": 4294967296}),
        ("job_logs", {**log, "sequence": 0, "stream": "stdout", "message": "x" * 3000}),
        ("job_logs", {**log, "sequence": -1}),
        ("job_logs", {**log, "stream": ""}),
        ("analytics", {**compat, "EventKey": ""}),
        ("analytics", {k: v for k, v in compat.items() if k != "EventKey"}),
        ("analytics", {**compat, "EventKey": None}),
        ("analytics", {**compat, "Extra": 1}),
        ("analytics", {**compat, "EventType": "JOBS", "Data": {"job_execution_duration": 12}}),
        ("analytics", {**compat, "EventType": "JOBS", "Data": {"job_execution_duration": 12.75}}),
        ("analytics", {**compat, "EventType": "JOBS", "Data": {"job_execution_duration": "12"}}),
        ("analytics", {**compat, "EventType": "JOBS", "Data": {"job_execution_duration": -1}}),
        ("analytics", {**compat, "EventType": "JOBS", "Data": {"job_execution_duration": True}}),
        ("analytics", {**compat, "EventType": "LOGS", "Data": {"count": 3}}),
        ("analytics", {**compat, "EventType": "LOGS", "Data": {"count": 3.5}}),
        ("analytics", {**compat, "EventType": "LOGS", "Data": {"count": 0}}),
        ("analytics", {**compat, "EventType": "WORKFLOWS", "Data": {"kind": "2026-01-01"}}),
        ("analytics", {**compat, "EventType": "WORKFLOWS", "Data": {"kind": ""}}),
        ("analytics", {**compat, "EventType": "WORKFLOWS", "Data": "kind"}),
        ("analytics", {**compat, "Data": None}),
        ("telemetry", metric),
        ("telemetry", {k: v for k, v in metric.items() if k != "value"}),
        ("telemetry", {**metric, "event_type": "behavioral", "value": "high"}),
        ("telemetry", {**metric, "is_dev": "yes"}),
        ("telemetry", {**metric, "is_dev": True}),
        ("telemetry", {**metric, "event_type": "job"}),
        ("telemetry", {**metric, "event_type": "Metric"}),
        ("telemetry", {**metric, "service_name": None}),
        ("telemetry", {**metric, "value": 10**30}),
        ("jobs", metric),
        ("workflows", {**job, "event_type": "workflow", "event_name": "created"}),
        # An integer past 64 bits where a string belongs, its digits also quoted as another field's value.
        ("job_logs", {**log, "user_id": 10**23, "message": str(10**23)}),
        ("job_logs", {**log, "user_id": str(10**23), "message": str(10**23)}),
        ("telemetry", {**metric, "service_name": 10**23, "note": str(10**23)}),
        # The landing columns only Kafka ingest fills may not be an event's keys (a telemetry event's may).
        ("job_logs", {**log, "_offset": 1}),
        ("jobs", {**job, "_timestamp_ms": "2026-11-24 08:00:00.000", "_topic": "jobs"}),
        ("analytics", {k: v for k, v in compat.items() if k != "EventKey"} | {"_partition": 0, "_offset": 0}),
        ("workflows", {**first[("workflows", "created")], "_error": "parse error"}),
        ("telemetry", {**metric, "_offset": 1, "_error": "x"}),
    ]
    return cases


def _telemetry(rng: random.Random, count: int) -> list[dict]:
    return [
        {
            "event_id": f"t-{n}",
            "event_time": f"2026-11-24T08:{n % 60:02d}:00.{n % 1000:03d}Z",
            "event_type": rng.choice(["behavioral", "metric", "log"]),
            "event_name": rng.choice(["login-start", "deploy-success", "cpu"]),
            "value": rng.random(),
            "service_name": "cli",
            "user_id": f"user-{n % 7}",
            "is_dev": n % 2 == 0,
        }
        for n in range(count)
    ]


def corpus(seed: int = 7, per_topic: int = 40, mutated_per_topic: int = 12) -> list[tuple[str, dict]]:
    """About 1,200 entries: `per_topic` valid events of each topic, and every field of
    `mutated_per_topic` of them removed once and replaced once by an odd value."""
    rng = random.Random(seed)
    by_topic: dict[str, list[dict]] = {}
    for event in _valid_events(seed) + _telemetry(rng, per_topic):
        by_topic.setdefault(topic_of(event), []).append(event)
    valid = [event for events in by_topic.values() for event in rng.sample(events, min(per_topic, len(events)))]
    entries = [(topic_of(event), event) for event in valid]
    chosen = [
        event for events in by_topic.values() for event in rng.sample(events, min(mutated_per_topic, len(events)))
    ]
    for event in chosen:
        topic = topic_of(event)
        for key in list(event):
            removed = dict(event)
            del removed[key]
            entries.append((topic, removed))
            changed = copy.deepcopy(event)
            changed[key] = rng.choice(ODD_VALUES)
            entries.append((topic, changed))
    entries += _handmade(valid)
    return entries


def encode(event: dict) -> bytes:
    """The event as a producer would put it on the wire: UTF-8 JSON, escaped only where it must be."""
    try:
        return json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form; JSON's \u escape carries it
        return json.dumps(event).encode()
