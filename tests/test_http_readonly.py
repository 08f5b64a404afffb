"""Read-only requests change nothing: GET and HEAD run as ClickHouse runs them, with readonly=2,
and so does a session asked for readonly=2 (a session's connection cannot be made read-only, so
its statements are judged one by one). Before, a GET ran DETACH, ATTACH, SYSTEM and KILL QUERY, a
HEAD dropped a table, and a readonly=2 session detached one."""

from __future__ import annotations

import uuid

import pytest

from tests.http_support import HTTP, db, get, post, url  # noqa: F401 - db is a fixture


def exists(clickhouse, table: str) -> bool:
    return post(clickhouse, f"EXISTS TABLE {table}".encode()).data == b"1\n"


@pytest.fixture
def table(clickhouse, db):  # noqa: F811 - the fixture
    name = f"{db}.kept"
    assert post(clickhouse, f"CREATE TABLE {name} (n UInt8) ENGINE = MergeTree ORDER BY n".encode()).status == 200
    assert post(clickhouse, f"INSERT INTO {name} VALUES (1)".encode()).status == 200
    return name


def refused(response, method: str = "GET") -> bool:
    return (
        response.status == 500
        and response.headers["X-ClickHouse-Exception-Code"] == "164"
        and (method == "HEAD" or f"method {method} implies readonly".encode() in response.data)
    )


@pytest.mark.parametrize(
    "statement",
    [
        "DETACH TABLE {t}",
        "DROP TABLE {t}",
        "RENAME TABLE {t} TO {t}_renamed",
        "SYSTEM STOP MERGES {t}",
        "KILL QUERY WHERE query LIKE '%never%' SYNC",
        "INSERT INTO {t} SELECT 2",
        "INSERT INTO FUNCTION file('readonly.csv', 'CSV', 'n UInt8') SELECT 1",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_and_head_change_nothing(clickhouse, table, statement, method):
    answer = HTTP.request(method, url(clickhouse, query=statement.format(t=table)))
    assert refused(answer, method), answer.data
    assert exists(clickhouse, table)
    assert post(clickhouse, f"SELECT count() FROM {table}".encode()).data == b"1\n"
    assert b"readonly.csv" not in post(clickhouse, b"SELECT _file FROM file('*.csv', 'LineAsString')").data


@pytest.mark.parametrize(("method", "params"), [("GET", {}), ("POST", {"readonly": "1"})])
def test_a_read_only_insert_is_refused_before_the_asynchronous_queue(clickhouse, table, method, params):
    # With wait_for_async_insert=0 it was answered 200, and its batch then failed out of sight.
    settings = {"async_insert": "1", "wait_for_async_insert": "0", **params}
    answer = HTTP.request(method, url(clickhouse, query=f"INSERT INTO {table} FORMAT TSV", **settings), body=b"7\n")
    assert answer.headers.get("X-ClickHouse-Exception-Code") == "164", answer.data
    assert post(clickhouse, f"SELECT count() FROM {table}".encode()).data == b"1\n"


def test_get_reads_sets_and_uses_as_readonly_2_allows(clickhouse, table):
    session = uuid.uuid4().hex
    assert get(clickhouse, query=f"SELECT count() FROM {table}").data == b"1\n"
    assert get(clickhouse, query="SET max_threads = 3", session_id=session).status == 200
    assert get(clickhouse, query="USE system", session_id=session).status == 200
    assert get(clickhouse, query="CREATE TEMPORARY TABLE scratch (n UInt8)", session_id=session).status == 200
    assert (
        get(clickhouse, query="SELECT currentDatabase(), getSetting('max_threads')", session_id=session).data
        == b"system\t3\n"
    )
    changed = get(clickhouse, query="SET readonly = 0", session_id=session)
    assert changed.headers["X-ClickHouse-Exception-Code"] == "164"
    assert b"Cannot modify 'readonly' setting" in changed.data
    # A POST in the same session is not read-only.
    assert post(clickhouse, b"INSERT INTO scratch VALUES (1)", session_id=session).status == 200


@pytest.mark.parametrize(
    "statement",
    [
        "DETACH TABLE {t}",
        "SYSTEM STOP MERGES {t}",
        "KILL QUERY WHERE query LIKE '%never%' SYNC",
        "INSERT INTO FUNCTION file('readonly.csv', 'CSV', 'n UInt8') SELECT 1",
        "INSERT INTO {t} VALUES (2)",
    ],
)
@pytest.mark.parametrize("session", [True, False])
def test_readonly_2_changes_nothing_in_a_session_or_out_of_one(clickhouse, table, statement, session):
    params = {"readonly": "2", **({"session_id": uuid.uuid4().hex} if session else {})}
    answer = post(clickhouse, statement.format(t=table).encode(), **params)
    assert answer.headers.get("X-ClickHouse-Exception-Code") == "164", answer.data
    assert exists(clickhouse, table)
    assert post(clickhouse, f"SELECT count() FROM {table}".encode()).data == b"1\n"


@pytest.mark.parametrize(
    ("method", "params"),
    [("GET", {}), ("POST", {"readonly": "1"}), ("POST", {"readonly": "2", "session_id": uuid.uuid4().hex})],
)
def test_a_statement_that_does_not_parse_is_a_syntax_error_not_a_readonly_one(clickhouse, method, params):
    # A ClickHouse server parses before it judges: a GET with a typo was told to use POST.
    answer = HTTP.request(method, url(clickhouse, query="SELEC 1", **params))
    assert answer.headers.get("X-ClickHouse-Exception-Code") == "62", answer.data
    assert b"Syntax error: failed at position 7" in answer.data
    # A statement that parses is judged as before, whatever chDB's class of it.
    answer = HTTP.request(method, url(clickhouse, query="KILL QUERY WHERE query LIKE '%never%' SYNC", **params))
    assert answer.headers.get("X-ClickHouse-Exception-Code") == "164", answer.data


@pytest.mark.parametrize(
    "fmt", ["JSON", "JSONCompact", "RowBinaryWithNamesAndTypes", "TSVWithNamesAndTypes", "CSVWithNames", "Parquet"]
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_readonly_1_reads_every_format(clickhouse, table, fmt, method):
    """readonly=1 answers a read in any format, as a server does. A format converted from the front's
    Native spool (JSON, the JDBC driver's RowBinaryWithNamesAndTypes...) was refused with "Cannot modify
    'max_threads' setting in readonly mode": the conversion's own settings, on the read-only connection."""
    query = f"SELECT n, toDateTime(0) AS epoch FROM {table} ORDER BY n FORMAT {fmt}"
    params = {"readonly": "1", "session_timezone": "Asia/Tokyo"}
    answer = HTTP.request(method, url(clickhouse, query=query, **params))
    assert answer.status == 200, answer.data
    assert answer.headers["X-ClickHouse-Format"] == fmt
    if fmt.startswith(("TSV", "CSV")):  # the request's settings shape the conversion too
        assert answer.data.decode().splitlines()[-1].replace('"', "").replace(",", "\t") == "1\t1970-01-01 09:00:00"
    elif fmt.startswith("JSON"):
        assert b"1970-01-01 09:00:00" in answer.data
    refused_insert = HTTP.request(method, url(clickhouse, query=f"INSERT INTO {table} SELECT 3", readonly="1"))
    assert refused_insert.headers["X-ClickHouse-Exception-Code"] == "164"
    assert post(clickhouse, f"SELECT count() FROM {table}".encode()).data == b"1\n"
