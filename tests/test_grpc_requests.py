"""Request checks, page tokens and caller tokens of the gRPC service: their rules and messages."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest

from analytics_proto import analytics_pb2 as pb
from core.backend import escape_value
from server import pagination
from server.auth import ANY_USER, TokenError, load_tokens, parse_file, parse_variable
from server.validation import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    IdFormat,
    InvalidArgument,
    Period,
    check_kind,
    check_page_size,
    check_period,
)

UUID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize("value", ["user-123", "a", "A.b:c_d-e", "x" * 128, UUID])
def test_plain_ids_accept_letters_digits_and_separators(value):
    assert IdFormat("plain").check("user_id", value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "user_id is required"),
        ("x" * 129, "user_id is longer than 128 characters (129)"),
        ("user 1", "' ' at position 4"),
        ("ünïcode", "'ü' at position 0"),
        ("a;drop", "';' at position 1"),
    ],
)
def test_plain_ids_refuse_with_the_reason(value, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        IdFormat("plain").check("user_id", value)


def test_uuid_ids_are_canonical_lower_case():
    ids = IdFormat("uuid")
    assert ids.check("workflow_id", UUID.upper()) == UUID
    assert ids.canonical(UUID.upper()) == ids.canonical(UUID)


@pytest.mark.parametrize("value", ["user-123", UUID[:-1], UUID.replace("-", ""), "{" + UUID + "}", UUID + "0"])
def test_uuid_ids_refuse_anything_else_as_malformed(value):
    with pytest.raises(InvalidArgument, match="workflow_id must be a UUID .*malformed UUID"):
        IdFormat("uuid").check("workflow_id", value)


def test_an_unknown_id_format_is_refused():
    with pytest.raises(ValueError, match="plain or uuid"):
        IdFormat("numbers")


def test_kinds():
    assert check_kind("") is None
    # Any kind a workflow event may name: non-empty UTF-8 text of any characters, up to 10,000 of them.
    for kind in ("HEARTBEAT", "ΚΙΝΔ-ünï", "x" * 10_000, "a kind\twith 'quotes', \\ and \0", " "):
        assert check_kind(kind) == kind
    with pytest.raises(InvalidArgument, match=r"kind is longer than 10,000 characters \(10,001\)"):
        check_kind("x" * 10_001)
    with pytest.raises(InvalidArgument, match="kind must be UTF-8 text, .* rule text_is_utf8 .* at position 1"):
        check_kind("a\udc80b")


def test_periods():
    assert check_period(pb.GetUserAnalyticsDetailsRequest()) == Period()
    assert not Period().bounded
    both = pb.GetUserAnalyticsDetailsRequest(date_range=pb.DateRange(start_date="2026-01-01", end_date="2026-01-01"))
    assert check_period(both) == Period(dt.date(2026, 1, 1), dt.date(2026, 1, 1))
    # a present but empty range is all time too
    assert check_period(pb.GetUserAnalyticsDetailsRequest(date_range=pb.DateRange())) == Period()
    # The Monday of 1970's first week, where a weekly series' first bucket starts, is the first day.
    first_week = pb.GetUserAnalyticsDetailsRequest(date_range=pb.DateRange(start_date="1969-12-29"))
    assert check_period(first_week) == Period()
    # Beyond the days events may have, a start or an end is open: Go's zero time is a client's "no start".
    for start, end in (("0001-01-01", ""), ("1969-12-28", "2150-01-01"), ("", "9999-12-31")):
        period = check_period(
            pb.GetUserAnalyticsDetailsRequest(date_range=pb.DateRange(start_date=start, end_date=end))
        )
        assert period == Period() and not period.bounded
    to_1970 = pb.DateRange(start_date="0001-01-01", end_date="1970-01-01")
    assert check_period(pb.GetUserAnalyticsDetailsRequest(date_range=to_1970)) == Period(
        dt.date(1970, 1, 1), dt.date(1970, 1, 1)
    )
    # The other way round no day could match.
    for field, date_range in (
        ("end_date 1969-12-31", pb.DateRange(end_date="1969-12-31")),
        ("end_date 0001-01-01", pb.DateRange(start_date="0001-01-01", end_date="0001-01-01")),
        ("start_date 2149-06-07", pb.DateRange(start_date="2149-06-07")),
    ):
        with pytest.raises(InvalidArgument, match=f"date_range.{field} is outside the days events may have"):
            check_period(pb.GetUserAnalyticsDetailsRequest(date_range=date_range))


def test_page_sizes():
    assert check_page_size(0) == DEFAULT_PAGE_SIZE
    assert check_page_size(7) == 7
    assert check_page_size(MAX_PAGE_SIZE + 1) == MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument, match="page_size must not be negative"):
        check_page_size(-5)


def test_page_tokens_round_trip_and_refuse_tampering():
    query = pagination.fingerprint("user", "jobs", False)
    position = pagination.Position(12, "wf-\\ tab\there")
    token = pagination.encode(query, position)
    assert pagination.decode(token, query) == position
    assert pagination.decode("", query) is None
    # No filter is not a filter of the text "None": a token of one was taken by the other.
    assert pagination.fingerprint("logs", None) != pagination.fingerprint("logs", "None")
    with pytest.raises(InvalidArgument, match="belongs to another query"):
        pagination.decode(token, pagination.fingerprint("other user", "jobs", False))
    too_large = pagination.encode(query, pagination.Position(2**63, "w"))  # Int64 would read it wrapped
    nested = base64.urlsafe_b64encode(b"[" * 5000).decode()  # past the JSON decoder's recursion limit
    for forged in (
        "%%%",
        "e30",
        token[:-3],
        pagination.encode(query, position).replace("e", "f", 1),
        too_large,
        nested,
    ):
        with pytest.raises(InvalidArgument, match="page_token"):
            pagination.decode(forged, query)


def test_parameter_values_are_escaped_for_clickhouse_text_parsing():
    assert escape_value("a\tb\nc\\d'e") == "a\\tb\\nc\\\\d'e"
    assert escape_value(dt.date(2026, 1, 2)) == "2026-01-02"
    assert escape_value(5) == "5"


# -- caller tokens ------------------------------------------------------------------------------

TOKEN_A = "a" * 20
TOKEN_B = "b" * 20


def test_tokens_from_the_variable_and_a_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# dashboards\n\n{TOKEN_B} user-2\n  {'c' * 16}   *  \n")
    tokens = load_tokens(f"{TOKEN_A}=user-1", path)
    assert len(tokens) == 3
    assert tokens.user_of(TOKEN_A) == "user-1"
    assert tokens.user_of(TOKEN_B) == "user-2"
    assert tokens.user_of("c" * 16) == ANY_USER
    assert tokens.user_of("d" * 20) is None


def test_a_base64_token_keeps_its_padding():
    """`openssl rand -base64 32` ends with "=": the token was cut at it, and the caller that sent
    the whole token was told it is not valid."""
    token = base64.b64encode(bytes(range(32))).decode()
    assert token.endswith("=")
    tokens = load_tokens(f"{token}=user-1,{TOKEN_A}==*", None)
    assert tokens.user_of(token) == "user-1"
    assert tokens.user_of(TOKEN_A + "=") == ANY_USER


def test_no_token_source_means_no_authentication():
    assert load_tokens(None, None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("justatokenwithoutuser", "item 1 is not TOKEN=USER_ID"),
        ("short=user", "at least 16 characters"),
        (f"{TOKEN_A}=", "has no user id"),
        (f"{TOKEN_A}=u1,{TOKEN_A}=u2", "item 2: the same token is given to two users"),
        (f"{TOKEN_A}=u1\n{TOKEN_B}=u2", "item 1: a token or user id holds a space or line break"),
        (f"{TOKEN_A}=u1 {TOKEN_B}=u2", "item 1: a token or user id holds a space or line break"),
    ],
)
def test_a_bad_token_variable_is_refused_with_the_item(text, message):
    with pytest.raises(TokenError, match=message):
        parse_variable(text)


def test_a_bad_token_file_is_refused_with_the_line(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN_A} user-1\n{TOKEN_B} user 2\n")
    with pytest.raises(TokenError, match="line 2: expected 'TOKEN USER_ID', found 3 fields"):
        parse_file(path)
    with pytest.raises(TokenError, match="cannot read the tokens file"):
        parse_file(tmp_path / "missing")


def test_configured_but_empty_tokens_are_refused(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# nothing yet\n")
    with pytest.raises(TokenError, match="none is given"):
        load_tokens(None, path)
