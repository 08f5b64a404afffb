"""The two shapes of message the SDK sends: enveloped events and the scheduler's compatibility events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from events.contract import (
    ANALYTICS_TOPIC,
    ENVELOPE_FIELDS,
    InvalidEvent,
    is_compat_message,
    parse_time,
    topic_for,
    validate_message,
)


def new_event_id() -> str:
    return str(uuid.uuid4())


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, e.g. 2026-11-24T08:00:00.123Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_utc_millis(moment: datetime, field_name: str) -> datetime:
    """The same instant in UTC, truncated to milliseconds; a naive datetime is ambiguous and refused."""
    if not isinstance(moment, datetime):  # a number of seconds or milliseconds? which zone's date?
        raise InvalidEvent(
            field_name,
            f"must be a datetime with a time zone or an ISO 8601 string (got {type(moment).__name__} {moment!r:.60})",
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidEvent(field_name, "is a datetime without a time zone; give one (e.g. tzinfo=UTC)")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # datetime.min or .max in a zone of its own: no such instant in UTC
        raise InvalidEvent(
            field_name, f"is {moment.isoformat()}, which in UTC falls outside the years 1 to 9999 a datetime holds"
        ) from None
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(to_utc_millis(value, "attribute"))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(data: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; datetimes become contract timestamps, NaN and infinities are refused."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default).encode()


def encode_event(data: Mapping[str, Any]) -> bytes:
    """An event's JSON; a value JSON cannot hold (an object, bytes, NaN) is an InvalidEvent naming its field."""
    try:
        return encode_json(data)
    except (TypeError, ValueError, RecursionError) as error:  # RecursionError: nested too deep to encode
        for name, value in data.items():
            try:
                encode_json({name: value})
            except (TypeError, ValueError, RecursionError) as field_error:
                raise InvalidEvent(name, f"cannot be written as JSON ({field_error})", "event") from None
        raise InvalidEvent("event", f"cannot be written as JSON ({error})") from None


class computed_once:  # noqa: N801 - a decorator, named as functools.cached_property is
    """functools.cached_property without its lock: Python 3.11 holds one lock for every instance of
    the class while it computes, so threads recording at once waited on each other, and a fork
    taken while one held it left the child's first record() hanging for good. Two threads that
    compute the same event's value at once compute equal values; either is kept."""

    def __init__(self, compute):
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = self.compute(instance)
        instance.__dict__[self.name] = value  # found before this descriptor from now on
        return value


@dataclass(frozen=True)
class Event:
    """One event: the envelope (`event_id`, `event_time`, `event_type`, `event_name`) and its attributes.

    `event_time` is kept in UTC with millisecond precision, exactly as it is serialised. An attribute
    given as a datetime (`started_at`, say) is kept as the contract's text for it, so an event built
    here is checked as the JSON it is sent as, as `Client.record` builds it. The event keeps a copy
    of `attributes`: changing the dict given afterwards changes no event made from it.
    """

    event_type: str
    event_name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=new_event_id)
    event_time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_time", to_utc_millis(self.event_time, "event_time"))
        for name in ENVELOPE_FIELDS:
            if name in self.attributes:
                raise InvalidEvent(name, "is an envelope field and cannot be an attribute")
        # A copy of its own: a dict the caller fills again for the next event (a template) changed
        # an event already sent, its Kafka key among them (read when the sink produces it), so a
        # workflow's event went to another workflow's partition with its JSON unchanged.
        # A datetime in a typed field (a job's started_at) was refused as "not of type 'string'"
        # by send(), while record_job() took it and the JSON would have written it as text.
        attributes = {
            name: format_time(to_utc_millis(value, name)) if isinstance(value, datetime) else value
            for name, value in self.attributes.items()
        }
        object.__setattr__(self, "attributes", attributes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """An event from its JSON form (as `to_dict` gives it); raises InvalidEvent naming the first bad field."""
        if not isinstance(data, Mapping):
            raise InvalidEvent("event", f"must be a mapping, got {type(data).__name__}")
        validate_message(data)
        if is_compat_message(data):
            raise InvalidEvent(
                "event_type",
                "is missing: with EventType or EventKey this is an analytics compatibility message, "
                "not an Event (send it with Client.record_analytics_compat)",
            )
        attributes = {name: value for name, value in data.items() if name not in ENVELOPE_FIELDS}
        return cls(
            event_type=data["event_type"],
            event_name=data["event_name"],
            attributes=attributes,
            event_id=data["event_id"],
            event_time=parse_time(data["event_time"], "event_time"),
        )

    @property
    def topic(self) -> str:
        return topic_for(self.event_type)

    @property
    def key(self) -> str | None:
        """Partition key: the workflow keeps a workflow's events in order; else the user; else none."""
        for name in ("workflow_id", "user_id"):
            value = self.attributes.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": format_time(self.event_time),
            "event_type": self.event_type,
            "event_name": self.event_name,
            **self.attributes,
        }

    @computed_once
    def json(self) -> bytes:
        """The event as one line of compact UTF-8 JSON (computed once, reused by every sink)."""
        return encode_event(self.to_dict())


CompatEventType = Literal["WORKFLOWS", "JOBS", "LOGS"]


@dataclass(frozen=True)
class AnalyticsCompatEvent:
    """A pre-aggregated event of the `analytics` topic, in the shape the scheduler emits today.

    `data` is `{"kind": ...}` for WORKFLOWS, `{"job_execution_duration": seconds}` for JOBS and
    `{"count": n}` for LOGS. `event_key` is the deduplication key.
    """

    event_type: CompatEventType
    user_id: str
    workflow_id: str
    data: dict[str, Any]
    event_key: str = field(default_factory=new_event_id)

    topic = ANALYTICS_TOPIC

    @property
    def event_id(self) -> str:
        return self.event_key

    @property
    def key(self) -> str | None:
        return self.workflow_id or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "EventKey": self.event_key,
            "UserID": self.user_id,
            "WorkflowID": self.workflow_id,
            "EventType": self.event_type,
            "Data": self.data,
        }

    @computed_once
    def json(self) -> bytes:
        return encode_event(self.to_dict())


# What a sink receives: either kind of message, both with `topic`, `key`, `event_id` and `json`.
AnyEvent = Event | AnalyticsCompatEvent
