"""The contract: schema files, routing, the fast check against jsonschema, and the README tables."""

from __future__ import annotations

import copy
import random
import re
from datetime import datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from events import Event, InvalidEvent, MemorySink, topic_for
from events.contract import (
    ENVELOPE_FIELDS,
    SCHEMA_BY_TOPIC,
    fast_check,
    is_compat_message,
    load_schema,
    reference_validator,
    schema_names,
    validate_message,
)
from events.demo import DemoGenerator
from events.docs import BEGIN, END, contract_markdown
from tests.events_support import START
from tests.malformed import valid_event

README = Path(__file__).resolve().parent.parent / "events" / "README.md"


@pytest.mark.parametrize("name", schema_names())
def test_every_schema_file_is_valid_json_schema(name):
    Draft202012Validator.check_schema(load_schema(name))


@pytest.mark.parametrize(
    ("event_type", "topic"),
    [
        ("workflow", "workflows"),
        ("job", "jobs"),
        ("job_log", "job_logs"),
        ("behavioral", "telemetry"),
        ("metric", "telemetry"),
        ("log", "telemetry"),
        ("anything_else", "telemetry"),
    ],
)
def test_event_types_route_to_their_topics(event_type, topic):
    assert topic_for(event_type) == topic


def test_the_partition_key_is_the_workflow_then_the_user_then_none():
    assert Event("job", "created", {"workflow_id": "w", "user_id": "u"}).key == "w"
    assert Event("behavioral", "click", {"user_id": "u"}).key == "u"
    assert Event("behavioral", "click", {}).key is None


def test_a_missing_envelope_field_is_named_before_any_other_problem():
    with pytest.raises(InvalidEvent) as error:
        validate_message({"event_type": "job", "event_time": "2026-11-24T08:00:00Z", "event_name": "created"})
    assert error.value.field == "event_id"


def test_an_event_from_a_dict_names_what_it_is_not():
    compat = {
        "EventKey": "k-1",
        "UserID": "u-1",
        "WorkflowID": "w-1",
        "EventType": "WORKFLOWS",
        "Data": {"kind": "CONTAINER"},
    }
    validate_message(compat)  # a valid message, of the other shape
    with pytest.raises(InvalidEvent, match="analytics compatibility message") as error:
        Event.from_dict(compat)
    assert error.value.field == "event_type"
    with pytest.raises(InvalidEvent) as error:
        Event.from_dict({"event_type": "job", "event_time": "2026-11-24T08:00:00Z", "event_name": "created"})
    assert error.value.field == "event_id"


@pytest.mark.parametrize(
    ("event_time", "problem"),
    [
        ("2026-02-30T08:00:00Z", "is not a real time: day is out of range for month"),
        ("2149-06-07T00:00:00Z", "is 2149-06-07 00:00 UTC, outside 1970-01-01 to 2149-06-06"),
        ("1970-01-01T00:30:00+01:00", "is 1969-12-31 23:30 UTC, outside 1970-01-01 to 2149-06-06"),
    ],
)
def test_an_event_from_a_dict_names_a_time_that_is_not_real_or_outside_the_days(event_time, problem):
    message = {**valid_event("job_logs", 1, "u-1"), "event_time": event_time}
    with pytest.raises(InvalidEvent, match=re.escape(problem)) as error:
        Event.from_dict(message)
    assert error.value.field == "event_time"


@pytest.mark.parametrize("event_time", ["1969-12-31T20:00:00-05:00", "2149-06-07T01:00:00+05:00"])
def test_a_time_written_on_a_day_outside_the_range_with_an_offset_that_brings_it_in_is_taken(event_time):
    # The range is of UTC days: 1969-12-31 20:00 at -05:00 is 1970-01-01 01:00 UTC.
    message = {**valid_event("job_logs", 1, "u-1"), "event_time": event_time}
    assert Event.from_dict(message).event_time == datetime.fromisoformat(event_time)


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def test_a_value_json_cannot_hold_is_named_when_the_event_is_written():
    # Nested past what the JSON encoder can recurse into (RecursionError) counts as such a value.
    for bad in (object(), b"bytes", {1, 2}, float("nan"), nested(5000)):
        with pytest.raises(InvalidEvent, match="cannot be written as JSON") as error:
            Event("workflow", "created", {"user_id": "u", "workflow_id": "w", "extra": bad}).json  # noqa: B018
        assert error.value.field == "extra"
    assert b'"extra":[1,2]' in Event("workflow", "created", {"extra": (1, 2)}).json  # a tuple is a JSON array


def test_a_value_nested_deeper_than_clickhouse_parses_is_named_as_such():
    message = {**valid_event("telemetry", 1, "u-1"), "extra": [nested(5000)]}
    with pytest.raises(InvalidEvent, match="extra is nested more than 1024 levels deep") as error:
        Event.from_dict(message)
    assert error.value.field == "extra"


def _corpus() -> list[dict]:
    """Valid events of every topic from the demo, and mutations of them, most of them invalid."""
    generator = DemoGenerator(users=8, rate=100.0, start=START, seed=7, legacy_share=0.3)
    valid = [event.to_dict() for event in generator.advance(START + 60)]
    rng = random.Random(7)
    replacements = [None, "", "x", 0, -1, 1, 1.5, True, False, {}, [], "2026-11-24T08:00:00Z", "2026-13-01", "pending"]
    mutated = []
    for message in rng.sample(valid, 300):
        for key in list(message):
            removed = dict(message)
            del removed[key]
            mutated.append(removed)
            changed = copy.deepcopy(message)
            changed[key] = rng.choice(replacements)
            mutated.append(changed)
        mutated.append({**message, "unexpected": 1})
    return valid + mutated


def _schema_for(message: dict) -> str:
    if is_compat_message(message):
        return SCHEMA_BY_TOPIC["analytics"]
    event_type = message.get("event_type")
    return SCHEMA_BY_TOPIC[topic_for(event_type)] if isinstance(event_type, str) else "envelope.json"


def test_the_fast_check_agrees_with_jsonschema():
    corpus = _corpus()
    verdicts = []
    for message in corpus:
        name = _schema_for(message)
        expected = reference_validator(name).is_valid(message)
        assert fast_check(name)(message) == expected, (name, message)
        verdicts.append(expected)
    assert verdicts.count(True) > 1000 and verdicts.count(False) > 1000  # both sides really exercised


def test_every_envelope_field_is_required_by_every_enveloped_schema():
    for topic, name in SCHEMA_BY_TOPIC.items():
        if topic == "analytics":
            continue
        event = {"event_id": "e", "event_time": "2026-11-24T08:00:00Z", "event_type": "x", "event_name": "y"}
        for field in ENVELOPE_FIELDS:
            assert not reference_validator(name).is_valid({k: v for k, v in event.items() if k != field})


@pytest.mark.parametrize("readme", [README, README.parent.parent / "README.md"], ids=["events", "project"])
def test_the_readme_tables_match_the_schemas(readme):
    text = readme.read_text(encoding="utf-8")
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert generated.strip() == contract_markdown().strip(), f"run: python -m events.docs --write {readme}"


def test_the_readme_example_runs():
    """The five-line example, with its Kafka sink swapped for an in-memory one."""
    example = README.read_text(encoding="utf-8").split("```python\n", 1)[1].split("```", 1)[0]
    assert len(example.strip().splitlines()) == 5
    sink = MemorySink()

    exec(compile(example.replace('KafkaSink("localhost:9092")', "sink"), "README example", "exec"), {"sink": sink})

    assert [event.event_type for event in sink.events] == ["workflow", "job_log"]
    assert sink.events[0].attributes["service_name"] == "scheduler" and sink.closed


def test_the_tables_state_the_event_type_rule_the_contract_enforces():
    """They said "string, any other type" while `Behavioral`, `my-type` and `a b` were refused."""
    telemetry = contract_markdown().split("#### Topic `telemetry`")[1]
    row = next(line for line in telemetry.splitlines() if line.startswith("| `event_type`"))
    [rule] = re.findall(r"matching `([^`]+)`", row)
    for event_type in ("behavioral", "my_type2", "Behavioral", "my-type", "a b", "2fa"):
        event = {"event_id": "e", "event_time": "2026-11-24T08:00:00Z", "event_type": event_type, "event_name": "x"}
        try:
            validate_message(event)
            accepted = True
        except InvalidEvent:
            accepted = False
        assert bool(re.fullmatch(rule, event_type)) == accepted, event_type
