"""Checks of request fields; each failure names the field and what is wrong with it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from google.protobuf import unknown_fields
from google.protobuf.descriptor import FieldDescriptor

from core.days import FIRST_DAY, LAST_DAY

MAX_ID_LENGTH = 128
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

# RFC 3339 date-time: a time zone offset is required; any number of fraction digits.
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
# The range of the DateTime64 columns that hold event times.
FIRST_TIME = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LAST_TIME = dt.datetime(2299, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
_PAST_LAST_TIME = LAST_TIME + dt.timedelta(seconds=1)  # no stored time is at or after it
MAX_CONTAINS_LENGTH = 1000
# A kind filter travels to ClickHouse as a query parameter in the URL (a server's http_max_uri_size
# is 1 MiB by default; percent-encoded, a character takes up to 12 bytes there).
MAX_KIND_LENGTH = 10_000


class InvalidArgument(ValueError):
    """A request field that cannot be used; the message is sent to the client as it is."""


def shown(value: str, limit: int = 40) -> str:
    """A client's value quoted for an error message, cut short when long."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


class IdFormat:
    """The ids the service accepts: ``plain`` (letters, digits, - _ . :) or ``uuid``."""

    def __init__(self, name: str):
        if name not in ("plain", "uuid"):
            raise ValueError(f"unknown id format {name!r}: plain or uuid")
        self.name = name

    def check(self, field: str, value: str) -> str:
        """The id to query with; UUIDs in their canonical lower-case form."""
        if not value:
            raise InvalidArgument(f"{field} is required")
        if self.name == "uuid":
            if not _UUID.fullmatch(value):
                raise InvalidArgument(
                    f"{field} must be a UUID like 123e4567-e89b-12d3-a456-426614174000 (malformed UUID: {shown(value)})"
                )
            return value.lower()
        if len(value) > MAX_ID_LENGTH:
            raise InvalidArgument(f"{field} is longer than {MAX_ID_LENGTH} characters ({len(value)})")
        if not _PLAIN_ID.fullmatch(value):
            position, character = next((i, c) for i, c in enumerate(value) if not _PLAIN_ID.fullmatch(c))
            raise InvalidArgument(
                f"{field} may hold only letters, digits and - _ . : "
                f"({character!r} at position {position} of {shown(value)})"
            )
        return value

    def canonical(self, value: str) -> str:
        """The form two ids are compared in (UUIDs ignore case)."""
        return value.lower() if self.name == "uuid" else value


def check_kind(value: str) -> str | None:
    """A workflow kind filter; None when no filter is asked for.

    A stored kind is what a workflow event's `kind` (or a WORKFLOWS event's `Data.kind`) held: any
    non-empty UTF-8 text, of any length and any characters (the event contract's rules
    kind_is_required and text_is_utf8). So any such text may match, compared as it is, as a query
    parameter, up to MAX_KIND_LENGTH characters. Only text that is not UTF-8 never can: a proto
    string cannot carry it (the request is refused before it gets here), but a caller in Python
    can pass a lone surrogate.
    """
    if not value:
        return None
    if len(value) > MAX_KIND_LENGTH:
        raise InvalidArgument(
            f"kind is longer than {MAX_KIND_LENGTH:,} characters ({len(value):,}): no filter by it is possible "
            "(workflows of such a kind are listed without the filter)"
        )
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as error:
            raise InvalidArgument(
                "kind must be UTF-8 text, as the event contract's rule text_is_utf8 requires of a stored kind "
                f"(a lone surrogate at position {error.start})"
            ) from None
    return value


@dataclass(frozen=True)
class Period:
    """Calendar days (UTC), both ends included."""

    first: dt.date = FIRST_DAY
    last: dt.date = LAST_DAY

    @property
    def bounded(self) -> bool:
        return (self.first, self.last) != (FIRST_DAY, LAST_DAY)


# The Monday of the first week the data can have: a weekly series' first bucket starts there, and
# a start it gave back is taken (as the first day), not refused.
FIRST_WEEK = FIRST_DAY - dt.timedelta(days=FIRST_DAY.weekday())


def _day(field: str, value: str, default: dt.date, earliest: dt.date = FIRST_DAY) -> dt.date:
    """A day of a DateRange. A start before the days events may have is the first of them, an end
    after them the last (Go's zero time, 0001-01-01, as an open start): the same days match. The other
    way round no day could: refused, naming the range."""
    if not value:
        return default
    if not _DAY.fullmatch(value):
        raise InvalidArgument(f"{field} must be a date YYYY-MM-DD (got {shown(value)})")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as error:
        # The form is right: say what is wrong with the day, not that it should be YYYY-MM-DD.
        raise InvalidArgument(f"{field} {value} is not a day on the calendar: {error}") from None
    opens_it = field.endswith("start_date")
    if day < earliest and not opens_it or day > LAST_DAY and opens_it:
        raise InvalidArgument(
            f"{field} {value} is outside the days events may have, {earliest} to {LAST_DAY}: nothing could match"
            " (leave it empty for an open range)"
        )
    return min(max(day, FIRST_DAY), LAST_DAY)


def check_period(request, field: str = "date_range") -> Period:
    """The request's DateRange as a Period; all time when the field is absent."""
    if not request.HasField(field):
        return Period()
    date_range = getattr(request, field)
    first = _day(f"{field}.start_date", date_range.start_date, FIRST_DAY, earliest=FIRST_WEEK)
    last = _day(f"{field}.end_date", date_range.end_date, LAST_DAY)
    if first > last:
        raise InvalidArgument(f"{field}.start_date {first} is after {field}.end_date {last}")
    return Period(first, last)


def check_page_size(value: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if value < 0:
        raise InvalidArgument(f"page_size must not be negative (got {value})")
    if value == 0:
        return default
    return min(value, maximum)


def check_time(field: str, value: str) -> int | None:
    """An RFC 3339 time as milliseconds since the epoch; None when empty.

    Event times have milliseconds: a time between two is rounded up to the next, which keeps
    "at or after start" and "before end" exact for the times stored. A start before the times
    events may have is the first of them, an end after them just past the last (Go's zero time,
    0001-01-01T00:00:00Z, as an open start): the same lines match. The other way round none could:
    refused, naming the range.
    """
    if not value:
        return None
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise InvalidArgument(
            f"{field} must be an RFC 3339 time like 2026-03-02T10:00:00Z or 2026-03-02T12:00:00.5+02:00"
            f" (got {shown(value)})"
        )
    day, clock, fraction, offset = match.groups()
    zone = "+00:00" if offset in ("Z", "z") else offset
    if int(zone[1:3]) > 23 or int(zone[4:]) > 59:
        raise InvalidArgument(f"{field} {shown(value)} has an offset outside -23:59 to +23:59 ({zone})")
    try:
        moment = dt.datetime.fromisoformat(f"{day}T{clock}{zone}")
    except ValueError as error:
        # The form is right: say which part is out of range (a 30 February, an hour 24, a second 60).
        raise InvalidArgument(f"{field} {shown(value)} is not a time on the calendar: {error}") from None
    # Compared before converting: year 1 at +01:00 is before any UTC datetime Python holds.
    before, after = moment < FIRST_TIME, moment >= _PAST_LAST_TIME
    if before or after:
        if before == (field == "start_time"):
            return _to_milliseconds(FIRST_TIME if before else _PAST_LAST_TIME)
        raise InvalidArgument(
            f"{field} {value} is outside the times events may have, {FIRST_TIME:%Y} to {LAST_TIME:%Y}:"
            " nothing could match (leave it empty for an open range)"
        )
    fraction = fraction or ""
    milliseconds = int(fraction[:3].ljust(3, "0")) + (1 if fraction[3:].strip("0") else 0)
    return _to_milliseconds(moment) + milliseconds


def _to_milliseconds(moment: dt.datetime) -> int:
    return int(moment.astimezone(dt.UTC).timestamp()) * 1000


def check_time_range(start_value: str, end_value: str) -> tuple[int | None, int | None]:
    """start_time and end_time of a request in milliseconds: from start (included) to end (excluded)."""
    start, end = check_time("start_time", start_value), check_time("end_time", end_value)
    if start is not None and end is not None and start > end:
        raise InvalidArgument(f"start_time {start_value} is after end_time {end_value}")
    return start, end


def check_contains(value: str) -> str | None:
    """Text a log line must contain; None when no search is asked for."""
    if not value:
        return None
    if len(value) > MAX_CONTAINS_LENGTH:
        raise InvalidArgument(f"contains is longer than {MAX_CONTAINS_LENGTH} characters ({len(value)})")
    return value


def check_enum(field: str, value: int, enum) -> int:
    """A known value of a proto enum (proto3 lets unknown numbers through)."""
    if value not in enum.values():
        names = ", ".join(v.name for v in enum.DESCRIPTOR.values if not v.name.endswith("_UNSPECIFIED"))
        raise InvalidArgument(f"{field} {value} is not one of {names}")
    return value


_WIRE_TYPES = {
    0: "a varint",
    1: "a 64-bit value",
    2: "bytes (a string or a message)",
    3: "a group",
    5: "a 32-bit value",
}
_FIELD_TYPES = {getattr(FieldDescriptor, n): n[5:].lower() for n in dir(FieldDescriptor) if n.startswith("TYPE_")}


def mistyped_field(message, path: str = "") -> str | None:
    """What is wrong when a field of ``message`` came with another wire type than its own; None if none did.

    Protobuf keeps such a field aside as an unknown one and reads the message without it: a client
    whose proto gives user_id another type was told "user_id is required", and a date_range whose
    days came as numbers was read as all time.
    """
    descriptor = message.DESCRIPTOR
    for unknown in unknown_fields.UnknownFieldSet(message):
        field = descriptor.fields_by_number.get(unknown.field_number)
        if field is not None:
            if field.message_type is not None:
                expected = field.message_type.full_name
            elif field.enum_type is not None:
                expected = f"enum {field.enum_type.full_name}"
            else:
                expected = _FIELD_TYPES[field.type]
            return (
                f"{path}{field.name} (field {field.number}) came as {_WIRE_TYPES.get(unknown.wire_type, 'unknown')}, "
                f"not as the {expected} it is: the client's proto does not match the service's"
            )
    for field in descriptor.fields:
        if field.message_type is not None and not field.is_repeated and message.HasField(field.name):
            found = mistyped_field(getattr(message, field.name), f"{path}{field.name}.")
            if found is not None:
                return found
    return None
