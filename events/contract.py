"""The event contract: which topic an event goes to, and its JSON Schema (files in events/schemas/)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, time, timedelta
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from core import names
from core.days import FIRST_DAY, LAST_DAY, RANGE_TEXT
from events.schema_check import Check, compile_schema

ENVELOPE_FIELDS = ("event_id", "event_time", "event_type", "event_name")

WORKFLOWS_TOPIC = names.WORKFLOWS.name
JOBS_TOPIC = names.JOBS.name
JOB_LOGS_TOPIC = names.JOB_LOGS.name
TELEMETRY_TOPIC = names.TELEMETRY.name
ANALYTICS_TOPIC = names.ANALYTICS.name

# event_type -> topic; every other event type is telemetry.
TOPIC_BY_EVENT_TYPE = {"workflow": WORKFLOWS_TOPIC, "job": JOBS_TOPIC, "job_log": JOB_LOGS_TOPIC}

SCHEMA_BY_TOPIC = {
    WORKFLOWS_TOPIC: "workflow.json",
    JOBS_TOPIC: "job.json",
    JOB_LOGS_TOPIC: "job_log.json",
    TELEMETRY_TOPIC: "telemetry.json",
    ANALYTICS_TOPIC: "analytics.json",
}
ENVELOPE_SCHEMA = "envelope.json"


def topic_for(event_type: str) -> str:
    return TOPIC_BY_EVENT_TYPE.get(event_type, TELEMETRY_TOPIC)


class InvalidEvent(ValueError):
    """An event that breaks the contract; `field` names the offending field (dotted for nested ones)."""

    def __init__(self, field: str, problem: str, event: str = "event"):
        super().__init__(f"invalid {event}: {field} {problem}")
        self.field = field
        self.problem = problem


# A time must fall on one of the days the aggregates hold (core.days), in UTC.
FIRST_TIME = datetime.combine(FIRST_DAY, time(), UTC)
END_TIME = datetime.combine(LAST_DAY + timedelta(days=1), time(), UTC)  # exclusive


def parse_time(value: str, field: str) -> datetime:
    """A timestamp of the contract (ISO 8601 with `Z` or an offset, real, in its days) as an aware datetime."""
    timestamp = load_schema(ENVELOPE_SCHEMA)["$defs"]["timestamp"]
    if not isinstance(value, str) or not re.fullmatch(timestamp["pattern"], value):
        raise InvalidEvent(field, f"{timestamp['x-error']} (got {value!r})")
    return _real_time(value, field, "event")


def schema_names() -> list[str]:
    return [ENVELOPE_SCHEMA, *SCHEMA_BY_TOPIC.values()]


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads((resources.files("events") / "schemas" / name).read_text(encoding="utf-8"))


@cache
def reference_validator(name: str) -> Draft202012Validator:
    registry = Registry().with_resources((n, Resource.from_contents(load_schema(n))) for n in schema_names())
    return Draft202012Validator(load_schema(name), registry=registry)


def is_compat_message(message: Mapping[str, Any]) -> bool:
    """The scheduler's `analytics` shape: no `event_type`, and its `EventType` (or `EventKey`) instead."""
    return "event_type" not in message and ("EventType" in message or "EventKey" in message)


def validate_message(message: Mapping[str, Any]) -> None:
    """Check a message in its JSON form against the contract; raise InvalidEvent naming the first bad field.

    An enveloped event is checked against the envelope first, so a missing envelope field is what
    gets reported; a message with `EventType` (or `EventKey`) and no `event_type` is a compatibility
    event. Beyond its schema an event must be what ClickHouse can take: text that is UTF-8 (no lone
    surrogates), finite numbers, timestamps that are real dates, and in what ClickHouse stores as
    its JSON type (a telemetry event, a compatibility event's `Data`) no two keys that make one path.
    """
    if is_compat_message(message):
        label = f"{ANALYTICS_TOPIC} compatibility event"
        _check(message, SCHEMA_BY_TOPIC[ANALYTICS_TOPIC], label)
        _check_no_kafka_columns(message, label)
        _check_values(message, label)
        _check_json_paths(message["Data"], "Data", label)
        return
    event_type = message.get("event_type")
    topic = topic_for(event_type) if isinstance(event_type, str) else None
    # A topic schema includes the envelope, so for a valid event one fast check is all it takes.
    if topic is None or not fast_check(SCHEMA_BY_TOPIC[topic])(message):
        _check(message, ENVELOPE_SCHEMA, "event")  # first, so a missing envelope field is what gets named
        topic = topic_for(message["event_type"])
        _check(message, SCHEMA_BY_TOPIC[topic], _label(message))
    _check_values(message, _label(message))
    if topic == TELEMETRY_TOPIC:
        _check_json_paths(message, "", _label(message))  # stored whole as `attributes`
    else:
        _check_no_kafka_columns(message, _label(message))
    for field in _TIMESTAMP_FIELDS:
        value = message.get(field)
        if isinstance(value, str) and (topic != TELEMETRY_TOPIC or field == "event_time"):
            _real_time(value, field, _label(message))
    if topic == JOBS_TOPIC:
        _check_job_times(message, _label(message))


_TIMESTAMP_FIELDS = ("event_time", "scheduled_at", "started_at", "completed_at")

# The landing tables' columns that only Kafka ingest fills (its position, a parse error): sent over
# HTTP, a key of these names would fill them, so every path refuses an event that has one (dbt
# macro kafka_column_names). A telemetry event lands whole, as one text, and may have them.
KAFKA_COLUMNS = ("_topic", "_partition", "_offset", "_timestamp_ms", "_raw_message", "_error")


def _check_no_kafka_columns(message: Mapping[str, Any], label: str) -> None:
    for name in KAFKA_COLUMNS:
        if name in message:
            raise InvalidEvent(name, "is set by Kafka ingest, never by a sender", label)


def _real_time(value: str, field: str, label: str) -> datetime:
    """The schema's pattern lets 2026-02-30 through, and the edges of its years in any offset; a
    timestamp must also be a day that exists, and in UTC one of the days the aggregates hold."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise InvalidEvent(field, f"is not a real time: {error} (got {value!r})", label) from None
    if not FIRST_TIME <= moment < END_TIME:
        raise InvalidEvent(
            field,
            f"is {moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC, outside {RANGE_TEXT} (got {value!r})",
            label,
        )
    return moment


# ClickHouse parses JSON nested at most this many levels deep (the event itself is the first).
MAX_NESTING = 1024


def _check_values(message: Mapping[str, Any], label: str) -> None:
    """Text encodable as UTF-8 and finite numbers, everywhere in the event (JSON has no NaN or
    Infinity), nested no deeper than ClickHouse parses. Depth first, in order, so the first bad
    value is the one named; a loop rather than recursion, so any depth is named, not a RecursionError."""
    _check_keys(message, "", label)
    stack: list[tuple[Iterator[tuple[Any, Any]], str, int]] = [(iter(message.items()), "", 1)]
    while stack:
        items, path, level = stack[-1]
        for key, value in items:
            if isinstance(key, str):
                _check_text(key, path or "event", label)
            if isinstance(value, str):
                _check_text(value, _joined(path, key), label)
            elif isinstance(value, float):
                if not math.isfinite(value):
                    raise InvalidEvent(_joined(path, key), f"must be a finite number (got {value!r})", label)
            elif isinstance(value, Mapping | list | tuple):
                if level >= MAX_NESTING:
                    field = _joined(path, key).split(".", 1)[0]  # the attribute, not a path of a thousand levels
                    raise InvalidEvent(field, f"is nested more than {MAX_NESTING} levels deep", label)
                if isinstance(value, Mapping):
                    _check_keys(value, _joined(path, key), label)
                    inner = value.items()
                else:
                    inner = enumerate(value)
                stack.append((iter(inner), _joined(path, key), level + 1))
                break
        else:
            stack.pop()


def _check_keys(mapping: Mapping[Any, Any], path: str, label: str) -> None:
    """Keys that are not text are written as JSON spells them, so `{True: 1, "true": 2}` (or `1` and
    `"1"`) writes one key twice, whatever the values: ClickHouse refuses such an object (a
    duplicate key at the top of a telemetry event, a duplicate path in it), and the batch with it."""
    if all(isinstance(key, str) for key in mapping):
        return
    spelled: dict[str, Any] = {}
    for key in mapping:
        text = _json_key(key)
        if text in spelled:
            raise InvalidEvent(
                _joined(path, text),
                f"is written twice, by the keys {spelled[text]!r} and {key!r}, which JSON spells alike",
                label,
            )
        spelled[text] = key


def _check_json_paths(document: Mapping[str, Any], where: str, label: str) -> None:
    """ClickHouse's JSON type reads a dot in a key as nesting, so `{"http.method": 1, "http":
    {"method": 2}}` writes the path `http.method` twice, and it refuses the insert ("Duplicate path
    found during parsing JSON object"), the whole batch with it. A null and an empty object write no
    path; an array is one value, and each object in it (at any depth) a JSON document of its own.
    Keys and arrays are taken as the JSON written for them: a tuple is an array, and a key that is
    not text is spelled as json.dumps spells it (`True` is `"true"`, `None` is `"null"`)."""
    documents: list[tuple[Any, str]] = [(document, where)]
    while documents:
        current, location = documents.pop()
        if isinstance(current, list | tuple):  # an array: its objects and arrays, each where it is (`items.1`)
            documents.extend(
                (item, f"{location}.{n}") for n, item in enumerate(current) if isinstance(item, Mapping | list | tuple)
            )
            continue
        written: dict[str, tuple[Any, ...]] = {}  # path -> the keys that wrote it
        # A mapping, the keys that lead to it, and its path (the keys as JSON writes them, dotted).
        stack: list[tuple[Mapping[str, Any], tuple[Any, ...], str]] = [(current, (), "")]
        while stack:
            mapping, keys, prefix = stack.pop()
            for key, value in mapping.items():
                if value is None:
                    continue
                path = _joined(prefix, _json_key(key)) if keys else _json_key(key)
                if isinstance(value, Mapping):
                    stack.append((value, (*keys, key), path))
                    continue
                if path in written:
                    raise InvalidEvent(
                        _joined(location, path),
                        f"is written by two keys, {_spelled(written[path])} and {_spelled((*keys, key))}, which"
                        " ClickHouse's JSON type reads as the same path (a dot in a key is nesting) and refuses"
                        " as a duplicate",
                        label,
                    )
                written[path] = (*keys, key)
                if isinstance(value, list | tuple):
                    documents.append((value, _joined(location, path)))


def _json_key(key: Any) -> str:
    """A key as json.dumps writes it: text as it is, `True` as `true`, `None` as `null`, numbers as
    their digits (another type is refused when the event is serialised, before this check)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, float):
        return float.__repr__(key)
    if isinstance(key, int):
        return int.__repr__(key)
    return str(key)


def _spelled(keys: tuple[Any, ...]) -> str:
    """Keys as a subscript, `["http"]["method"]`, where a dotted path would not tell them apart."""
    return "".join(f"[{json.dumps(key, ensure_ascii=False)}]" for key in keys)


def _joined(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_text(text: str, path: str, label: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(path, "holds text that is not valid Unicode (a lone surrogate)", label) from None


def _label(message: Mapping[str, Any]) -> str:
    return f"{message['event_type']} event {message.get('event_name')!r}"


@cache
def fast_check(name: str) -> Check:
    return compile_schema(load_schema(name), name, _resolve)


def _resolve(reference: str, document: str) -> tuple[dict[str, Any], str]:
    """A `$ref` such as `envelope.json#/$defs/id` (or `#/$defs/id` within `document`)."""
    target_document, _, pointer = reference.partition("#")
    target_document = target_document or document
    schema = load_schema(target_document)
    for part in filter(None, pointer.split("/")):
        schema = schema[part]
    return schema, target_document


def _check(message: Mapping[str, Any], schema: str, label: str) -> None:
    if fast_check(schema)(message):
        return
    # jsonschema is the reference: it names the problem, and overrules the fast check if they disagree.
    error = best_match(reference_validator(schema).iter_errors(message))
    if error is not None:
        field, problem = _explain(error)
        raise InvalidEvent(field, problem, label)


def _check_job_times(message: Mapping[str, Any], label: str) -> None:
    # A negative duration would poison the execution-time sums, and a schema cannot compare two fields.
    # Times are kept to the millisecond (DateTime64(3), digits beyond cut off), so they are compared so.
    # Durations come from the events that end a job (completed, failed): only theirs are compared,
    # as the landing tables' rule does.
    if message.get("event_name") not in ("completed", "failed"):
        return
    started, completed = message.get("started_at"), message.get("completed_at")
    both = isinstance(started, str) and isinstance(completed, str)
    if both and _to_millisecond(completed) < _to_millisecond(started):
        raise InvalidEvent("completed_at", f"{completed} is before started_at {started}", label)


def _to_millisecond(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _explain(error: ValidationError) -> tuple[str, str]:
    """The field a schema error is about (dotted path) and the problem in words."""
    path = [str(part) for part in error.absolute_path]
    instance, expected = error.instance, error.validator_value
    if error.validator == "required":
        missing = next(name for name in expected if name not in instance)
        return ".".join([*path, missing]), "is required but missing"
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        unexpected = sorted(name for name in instance if name not in allowed)
        return ".".join([*path, unexpected[0]]), "is not a field of this event"
    field = ".".join(path) or "event"
    if error.schema.get("x-error"):
        return field, f"{error.schema['x-error']} (got {instance!r})"
    if error.validator == "const":
        return field, f"must be {expected!r} here (got {instance!r})"
    if error.validator == "enum":
        return field, f"must be one of {', '.join(map(repr, expected))} (got {instance!r})"
    return field, error.message
