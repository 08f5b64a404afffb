"""The job-log requests' rules: times, search text, page tokens, and how values reach ClickHouse."""

from __future__ import annotations

import base64
import json
import re

import pytest

from core.backend import escape_value
from server import pagination
from server.log_service import timestamp
from server.logs import like_pattern
from server.pagination import LogPosition
from server.validation import InvalidArgument, check_contains, check_time, check_time_range

KEY = "0123456789ABCDEF0123456789ABCDEF"


@pytest.mark.parametrize(
    ("value", "milliseconds"),
    [
        ("2026-03-02T10:00:00Z", 1772445600000),
        ("2026-03-02t10:00:00z", 1772445600000),
        ("2026-03-02 10:00:00Z", 1772445600000),
        ("2026-03-02T12:00:00+02:00", 1772445600000),
        ("2026-03-02T04:30:00.5-05:30", 1772445600500),
        ("2026-03-02T10:00:00.123Z", 1772445600123),
        # between two milliseconds: the next, so "at or after" and "before" stay exact
        ("2026-03-02T10:00:00.1230001Z", 1772445600124),
        ("2026-03-02T10:00:00.123000000Z", 1772445600123),
        ("1969-12-31T23:59:59.999Z", -1),
    ],
)
def test_times_are_rfc_3339_in_milliseconds(value, milliseconds):
    assert check_time("start_time", value) == milliseconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-03-02", "start_time must be an RFC 3339 time like 2026-03-02T10:00:00Z"),
        ("2026-03-02T10:00:00", "must be an RFC 3339 time"),  # no offset: which zone?
        # in the right form, out of range: what is wrong, not the form again
        ("2026-03-02T25:00:00Z", "start_time '2026-03-02T25:00:00Z' is not a time on the calendar: hour must be in"),
        ("2026-02-29T10:00:00Z", "is not a time on the calendar: day is out of range for month"),
        ("2026-03-02T10:00:60Z", "is not a time on the calendar: second must be in 0..59"),
        ("2026-03-02T10:00:00-05:60", "has an offset outside -23:59 to +23:59 (-05:60)"),
        ("２０２６-03-02T10:00:00Z", "must be an RFC 3339 time"),  # digits of another script
        ("2026-03-02T10:00:00.１２３Z", "must be an RFC 3339 time"),
        ("yesterday", "(got 'yesterday')"),
    ],
)
def test_times_that_are_not_rfc_3339_are_refused(value, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        check_time("start_time", value)


FIRST_MS = -2208988800000  # 1900-01-01T00:00:00Z, the first time a stored event may have
PAST_LAST_MS = 10413792000000  # 2300-01-01T00:00:00Z, just past the last


@pytest.mark.parametrize(
    ("field", "value", "milliseconds"),
    [
        # Go's zero time.Time, formatted with time.RFC3339: a client's "no start"
        ("start_time", "0001-01-01T00:00:00Z", FIRST_MS),
        ("start_time", "0001-01-01T00:00:00+01:00", FIRST_MS),  # before any UTC time Python holds
        ("start_time", "1899-12-31T23:59:59.999Z", FIRST_MS),
        ("end_time", "2300-01-01T00:00:00Z", PAST_LAST_MS),
        ("end_time", "9999-12-31T23:59:59-05:00", PAST_LAST_MS),  # after any UTC time Python holds
        # the first and the last stored times are themselves inside
        ("start_time", "1900-01-01T00:00:00Z", FIRST_MS),
        ("end_time", "2299-12-31T23:59:59.999Z", PAST_LAST_MS - 1),
    ],
)
def test_a_bound_beyond_the_times_events_may_have_is_open(field, value, milliseconds):
    assert check_time(field, value) == milliseconds


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("end_time", "0001-01-01T00:00:00Z"),
        ("end_time", "1899-12-31T23:59:59Z"),
        ("start_time", "2300-01-01T00:00:00Z"),
    ],
)
def test_a_bound_that_leaves_no_time_is_refused(field, value):
    with pytest.raises(
        InvalidArgument, match=re.escape(f"{field} {value} is outside the times events may have, 1900 to 2299")
    ):
        check_time(field, value)


def test_a_time_range_may_be_open_or_empty_but_not_backwards():
    assert check_time_range("", "") == (None, None)
    assert check_time_range("2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z") == (1772445600000, 1772445600000)
    with pytest.raises(InvalidArgument, match="start_time 2026-03-02T11:00:00Z is after end_time"):
        check_time_range("2026-03-02T11:00:00Z", "2026-03-02T10:00:00Z")


def test_timestamps_are_utc_with_milliseconds():
    assert timestamp(1772445600123) == "2026-03-02T10:00:00.123Z"
    assert timestamp(1772445600000) == "2026-03-02T10:00:00.000Z"
    assert timestamp(-1) == "1969-12-31T23:59:59.999Z"


def test_search_text_is_taken_literally():
    assert check_contains("") is None
    assert check_contains("x" * 1000) == "x" * 1000
    with pytest.raises(InvalidArgument, match="contains is longer than 1000 characters"):
        check_contains("x" * 1001)
    assert like_pattern("100%_done\\") == "%100\\%\\_done\\\\%"


def test_a_log_page_token_resumes_its_own_query_only():
    position = LogPosition(41, 1772445600123, KEY)
    token = pagination.encode_log("query-a", position)
    assert pagination.decode_log(token, "query-a") == position
    assert pagination.decode_log("", "query-a") is None
    with pytest.raises(InvalidArgument, match="belongs to another query: keep user_id, workflow_id, job_id"):
        pagination.decode_log(token, "query-b")
    # a workflow listing's token is no log token, and the other way round
    with pytest.raises(InvalidArgument, match="not a token this service issued"):
        pagination.decode_log(pagination.encode("query-a", pagination.Position(3, "w")), "query-a")
    with pytest.raises(InvalidArgument, match="not a token this service issued"):
        pagination.decode(token, "query-a")


def forged(**payload) -> str:
    fields = {"v": 1, "q": "query-a", "s": 1, "t": 2, "e": KEY, **payload}
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        forged(v=2),
        forged(s=-1),
        forged(s=True),
        forged(t="2"),
        forged(e="nothex"),
        forged(e=KEY.lower() + "' or 1=1"),
        forged(s=2**64 + 4),  # ClickHouse would read these wrapped: 4, and 0
        forged(t=2**63),
        forged(t=-(2**63) - 1),
        base64.urlsafe_b64encode(b"[" * 5000).decode(),  # nested past the JSON decoder's recursion limit
    ],
)
def test_a_tampered_log_token_is_refused(token):
    with pytest.raises(InvalidArgument, match="page_token is not a token this service issued"):
        pagination.decode_log(token, "query-a")


def test_jobs_travel_as_an_array_of_tuples():
    jobs = [("u", "w", "j"), ("it's", "tab\there", "back\\slash")]
    assert escape_value(jobs) == "[('u','w','j'),('it\\'s','tab\\there','back\\\\slash')]"
