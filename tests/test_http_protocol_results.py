"""The ClickHouse HTTP interface at the wire level: results as they stream, errors in them, sessions,
query ids, inserts through failing views and credentials (requests and bodies: test_http_protocol.py)."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid

import pyarrow.parquet as pq
import pytest

from tests.http_support import HTTP, db, get, post, url  # noqa: F401 - db is a fixture

# Ordered: numbers() of a bounded count may be read by several threads, whose blocks then arrive
# in any order (one clean-clone run ended its JSON at row 65408); the sort still streams in blocks.
MULTI_BLOCK = "SELECT number AS n, toString(number) AS s FROM numbers(200000) ORDER BY n"


@pytest.mark.parametrize("fmt", ["TabSeparated", "CSV", "JSONEachRow", "Native", "RowBinary", "JSONCompactEachRow"])
def test_row_formats_stream_in_chunks(clickhouse, fmt):
    response = HTTP.request(
        "POST", clickhouse.url + "/", body=f"{MULTI_BLOCK} FORMAT {fmt}".encode(), preload_content=False
    )
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert response.headers["X-ClickHouse-Format"] == fmt
    data = b"".join(response.stream(1 << 16))
    if fmt == "TabSeparated":
        assert data.count(b"\n") == 200000 and data.endswith(b"199999\t199999\n")
    elif fmt == "JSONEachRow":
        last = json.loads(data.splitlines()[-1])
        assert (int(last["n"]), last["s"]) == (199999, "199999")


def test_header_formats_have_one_header(clickhouse):
    tsv = post(clickhouse, f"{MULTI_BLOCK} FORMAT TSVWithNamesAndTypes".encode()).data.splitlines()
    assert tsv[:2] == [b"n\ts", b"UInt64\tString"]
    assert len(tsv) == 200002
    assert tsv.count(b"n\ts") == 1
    csv = post(clickhouse, f"{MULTI_BLOCK} FORMAT CSVWithNames".encode()).data.splitlines()
    assert csv[0] == b'"n","s"' and len(csv) == 200001


def test_document_formats_are_single_documents(clickhouse):
    document = json.loads(post(clickhouse, f"{MULTI_BLOCK} FORMAT JSON".encode()).data)
    assert document["rows"] == 200000
    assert [column["name"] for column in document["meta"]] == ["n", "s"]
    assert (int(document["data"][-1]["n"]), document["data"][-1]["s"]) == (199999, "199999")
    compact = json.loads(post(clickhouse, f"{MULTI_BLOCK} FORMAT JSONCompact".encode()).data)
    assert len(compact["data"]) == 200000
    parquet = pq.read_table(io.BytesIO(post(clickhouse, f"{MULTI_BLOCK} FORMAT Parquet".encode()).data))
    assert parquet.num_rows == 200000 and parquet.column("n").to_pylist()[-1] == 199999


BINARY_TYPES = "output_format_native_encode_types_in_binary_format"
ZONED = (
    "SELECT toDateTime('2024-07-01 12:00:00', 'Europe/Berlin') + number AS berlin, "
    "toDateTime('2024-07-01 12:00:00', 'UTC') + number AS utc FROM numbers(3) ORDER BY berlin"
)


@pytest.mark.parametrize("session", [False, True])
def test_converted_formats_keep_a_datetime_columns_own_zone(clickhouse, session):
    """A spooled format (TSVWithNamesAndTypes, JSON, RowBinaryWithNamesAndTypes: the JDBC driver's)
    is converted from chDB's Native output, which writes a DateTime('tz') column's type as a bare
    DateTime: the type lost its zone and the times were UTC's (10:00), where TSV said 12:00."""
    params = {"session_id": uuid.uuid4().hex} if session else {}
    streamed = post(clickhouse, f"{ZONED} FORMAT TSV".encode(), **params).data.decode()
    assert streamed.startswith("2024-07-01 12:00:00\t2024-07-01 12:00:00\n")
    typed = post(clickhouse, f"{ZONED} FORMAT TSVWithNamesAndTypes".encode(), **params).data.decode()
    assert typed == "berlin\tutc\nDateTime(\\'Europe/Berlin\\')\tDateTime(\\'UTC\\')\n" + streamed
    document = json.loads(post(clickhouse, f"{ZONED} FORMAT JSONCompact".encode(), **params).data)
    assert [column["type"] for column in document["meta"]] == ["DateTime('Europe/Berlin')", "DateTime('UTC')"]
    assert document["data"][0] == ["2024-07-01 12:00:00", "2024-07-01 12:00:00"]
    binary = post(clickhouse, f"{ZONED} FORMAT RowBinaryWithNamesAndTypes".encode(), **params).data
    assert b"DateTime('Europe/Berlin')" in binary
    # The request's own word on how Native writes types is kept, and the answer is still whole.
    own = post(clickhouse, f"{ZONED} FORMAT CSVWithNames".encode(), **params, **{BINARY_TYPES: "0"})
    assert own.status == 200 and own.data.count(b"\n") == 4
    if session:  # the front's setting is undone: the session's Native output is as it was
        assert post(clickhouse, f"SELECT getSetting('{BINARY_TYPES}')".encode(), **params).data == b"false\n"


REPEATED = "SELECT number, toString(number) AS s, number FROM numbers(50000) ORDER BY number"


@pytest.mark.parametrize(
    "fmt", ["JSONCompact", "TSVWithNames", "CSVWithNames", "Parquet", "RowBinaryWithNamesAndTypes"]
)
def test_two_columns_of_one_name_in_every_converted_format(clickhouse, fmt):
    # `SELECT id, *` (and what JDBC, DBeaver and Metabase ask for) failed with code 636: reading
    # the spool refused the repeated name. The answer keeps both, as the statement writes them.
    answer = post(clickhouse, REPEATED.encode(), default_format=fmt)
    assert answer.status == 200, answer.data[:300]
    if fmt == "JSONCompact":
        document = json.loads(answer.data)
        assert [column["name"] for column in document["meta"]] == ["number", "s", "number"]
        assert document["data"][-1] == [49999, "49999", 49999] and len(document["data"]) == 50000
    elif fmt == "Parquet":
        parquet = pq.ParquetFile(io.BytesIO(answer.data))
        assert parquet.schema_arrow.names == ["number", "s", "number"] and parquet.metadata.num_rows == 50000
    elif fmt == "RowBinaryWithNamesAndTypes":
        assert answer.data.startswith(b"\x03\x06number\x01s\x06number\x06UInt64\x06String\x06UInt64")
    else:
        quote = '"' if fmt == "CSVWithNames" else ""
        separator = "," if fmt == "CSVWithNames" else "\t"
        lines = answer.data.decode().splitlines()
        assert lines[0] == separator.join(f"{quote}{name}{quote}" for name in ("number", "s", "number"))
        assert lines[-1] == separator.join(["49999", f"{quote}49999{quote}", "49999"]) and len(lines) == 50001


# A thousand blocks of 100 rows: a document is converted from their spool, which a pipeline of
# several threads would hand on in whatever order its threads finish.
MANY_BLOCKS = "SELECT number AS n FROM numbers(100000) ORDER BY n SETTINGS max_block_size = 100"


@pytest.mark.parametrize("fmt", ["JSON", "JSONCompact", "CSVWithNames", "XML", "Parquet"])
def test_document_formats_keep_the_order_of_the_rows(clickhouse, fmt):
    data = post(clickhouse, f"{MANY_BLOCKS} FORMAT {fmt}".encode()).data
    if fmt == "JSON":
        numbers = [int(row["n"]) for row in json.loads(data)["data"]]
    elif fmt == "JSONCompact":
        numbers = [int(row[0]) for row in json.loads(data)["data"]]
    elif fmt == "CSVWithNames":
        numbers = [int(line) for line in data.splitlines()[1:]]
    elif fmt == "XML":
        numbers = [int(n) for n in re.findall(rb"<n>(\d+)</n>", data)]
    else:
        numbers = pq.read_table(io.BytesIO(data)).column("n").to_pylist()
    assert numbers == list(range(100000))


# Seven rows in three blocks: chDB writes each block as a fresh output of its format.
BLOCKS_OF_THREE = "SELECT number AS n FROM numbers(7) SETTINGS max_block_size = 3, max_threads = 1"


def test_values_separate_every_row_with_a_comma_across_blocks(clickhouse):
    assert post(clickhouse, f"{BLOCKS_OF_THREE} FORMAT Values".encode()).data == b"(0),(1),(2),(3),(4),(5),(6)"


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        (f"{BLOCKS_OF_THREE}, output_format_json_array_of_rows = 1 FORMAT JSONEachRow", {}),
        (f"{BLOCKS_OF_THREE} FORMAT NDJSON", {"output_format_json_array_of_rows": "1"}),
        (f"{BLOCKS_OF_THREE} FORMAT JSONStringsEachRow", {"session_id": "array-of-rows"}),
    ],
    ids=["statement", "url", "session"],
)
def test_an_array_of_rows_is_one_json_array_however_the_setting_is_given(clickhouse, statement, params):
    if "session_id" in params:
        assert post(clickhouse, b"SET output_format_json_array_of_rows = 1", **params).status == 200
    rows = json.loads(post(clickhouse, statement.encode(), **params).data)
    assert [int(row["n"]) for row in rows] == list(range(7))


@pytest.mark.parametrize("where", ["before FORMAT", "after FORMAT"])
def test_a_statements_own_output_settings_shape_a_converted_format(clickhouse, where):
    settings = "SETTINGS output_format_json_quote_64bit_integers = 1, date_time_output_format = 'unix_timestamp'"
    select = "SELECT toUInt64(5) AS x, toDateTime('2026-12-06 10:00:00', 'UTC') AS t"
    clauses = [settings, "FORMAT JSONCompact"] if where == "before FORMAT" else ["FORMAT JSONCompact", settings]
    text = " ".join([select, *clauses])
    assert json.loads(post(clickhouse, text.encode()).data)["data"] == [["5", "1796551200"]]
    csv = post(clickhouse, b"SELECT 1 AS a, 'b' AS b FORMAT CSVWithNames SETTINGS format_csv_delimiter = ';'").data
    assert csv == b'"a";"b"\n1;"b"\n'


GROUPED = "SELECT number % 2 AS k, count() AS c FROM numbers(10) GROUP BY k WITH TOTALS ORDER BY k"


def test_totals_follow_the_rows_as_a_server_writes_them(clickhouse):
    assert (
        post(clickhouse, f"{GROUPED} SETTINGS max_block_size = 1 FORMAT TSV".encode()).data == b"0\t5\n1\t5\n\n0\t10\n"
    )
    assert post(clickhouse, f"{GROUPED} FORMAT CSV".encode()).data == b"0,5\n1,5\n\n0,10\n"
    assert json.loads(post(clickhouse, f"{GROUPED} FORMAT JSONCompact".encode()).data)["totals"] == [0, 10]
    # A subquery's totals are not the answer's: that one still streams, and has no totals row.
    assert post(clickhouse, f"SELECT c FROM ({GROUPED}) ORDER BY c".encode()).data == b"5\n5\n"


@pytest.mark.parametrize("given", ["url", "statement", "session"])
def test_extremes_follow_the_rows_as_a_server_writes_them(clickhouse, given):
    select = "SELECT number AS n FROM numbers(6) SETTINGS max_block_size = 2"
    if given == "url":
        text, params = f"{select} FORMAT TSV", {"extremes": "1"}
    elif given == "statement":
        text, params = f"{select}, extremes = 1 FORMAT TSV", {}
    else:
        text, params = f"{select} FORMAT TSV", {"session_id": f"extremes-{uuid.uuid4().hex[:8]}"}
        assert post(clickhouse, b"SET extremes = 1", **params).status == 200
    assert post(clickhouse, text.encode(), **params).data == b"0\n1\n2\n3\n4\n5\n\n0\n5\n"
    document = json.loads(post(clickhouse, text.replace("TSV", "JSON").encode(), **params).data)
    assert document["extremes"] == {"min": {"n": 0}, "max": {"n": 5}}


@pytest.mark.parametrize("fmt", ["JSON", "JSONCompact", "XML"])
def test_a_limited_document_says_how_many_rows_came_before_the_limit(clickhouse, fmt):
    data = post(clickhouse, f"SELECT number FROM numbers(500) ORDER BY number LIMIT 10, 3 FORMAT {fmt}".encode()).data
    if fmt == "XML":
        assert b"<rows_before_limit_at_least>500</rows_before_limit_at_least>" in data
    else:
        assert json.loads(data)["rows_before_limit_at_least"] == 500
    # A LIMIT BY bounds rows per group, not the answer: that one is spooled and has no such count.
    grouped = "SELECT number % 2 AS k FROM numbers(500) ORDER BY k LIMIT 1 BY k FORMAT JSON"
    assert "rows_before_limit_at_least" not in json.loads(post(clickhouse, grouped.encode()).data)


def test_empty_results_in_document_formats_keep_their_header(clickhouse):
    document = json.loads(post(clickhouse, b"SELECT 1 AS one WHERE 0 FORMAT JSON").data)
    assert document["rows"] == 0 and document["meta"][0]["name"] == "one"
    assert post(clickhouse, b"SELECT 1 AS one WHERE 0 FORMAT TSVWithNames").data == b"one\n"


def test_error_after_the_first_block_is_marked_in_the_body(clickhouse):
    response = post(
        clickhouse,
        b"SELECT number, throwIf(number = 150000, 'late failure') FROM numbers(200000)",
        max_block_size="10000",
    )
    assert response.status == 200  # the headers were already sent
    tag = response.headers["X-ClickHouse-Exception-Tag"]
    assert len(tag) == 16
    assert response.data.endswith(f" {tag}\r\n__exception__\r\n".encode())
    assert f"\r\n__exception__\r\n{tag}\r\nCode: 395.".encode() in response.data


def test_error_before_the_first_block_is_a_proper_error(clickhouse):
    response = post(clickhouse, b"SELECT throwIf(number = 0, 'early failure') FROM numbers(10)")
    assert response.status == 500
    assert response.headers["X-ClickHouse-Exception-Code"] == "395"
    assert b"early failure" in response.data


def test_wait_end_of_query_buffers_and_reports_errors_with_status(clickhouse):
    ok = post(clickhouse, b"SELECT count() FROM numbers(100000)", wait_end_of_query="1")
    assert ok.data == b"100000\n"
    failed = post(
        clickhouse,
        b"SELECT number, throwIf(number = 150000) FROM numbers(200000)",
        wait_end_of_query="1",
        max_block_size="10000",
    )
    assert failed.status == 500
    assert failed.headers["X-ClickHouse-Exception-Code"] == "395"


def test_get_requests_are_read_only(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.ro (n UInt8) ENGINE = Memory".encode())
    refused = get(clickhouse, query=f"INSERT INTO {db}.ro VALUES (1)")
    assert refused.status == 500
    assert refused.headers["X-ClickHouse-Exception-Code"] == "164"
    assert b"method GET implies readonly" in refused.data
    assert get(clickhouse, query=f"SELECT count() FROM {db}.ro").data == b"0\n"


def test_readonly_requests_do_not_leave_connections_read_only(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.w (n UInt8) ENGINE = Memory".encode())
    for _ in range(20):  # more requests than pooled connections
        refused = post(clickhouse, f"INSERT INTO {db}.w VALUES (1)".encode(), readonly="1")
        assert refused.headers["X-ClickHouse-Exception-Code"] == "164"
        assert post(clickhouse, b"SELECT 1", readonly="1").data == b"1\n"
    for _ in range(20):
        assert post(clickhouse, f"INSERT INTO {db}.w VALUES (1)".encode()).status == 200
    assert post(clickhouse, f"SELECT count() FROM {db}.w".encode()).data == b"20\n"


def test_session_state_and_isolation(clickhouse, db):
    session = uuid.uuid4().hex
    assert post(clickhouse, f"USE {db}".encode(), session_id=session).status == 200
    post(clickhouse, b"CREATE TEMPORARY TABLE tmp (n UInt8)", session_id=session)
    post(clickhouse, b"INSERT INTO tmp VALUES (5)", session_id=session)
    post(clickhouse, b"SET max_threads = 3", session_id=session)
    assert (
        post(
            clickhouse, b"SELECT currentDatabase(), getSetting('max_threads'), sum(n) FROM tmp", session_id=session
        ).data
        == f"{db}\t3\t5\n".encode()
    )
    # A per-request setting in a session is undone afterwards; the session's own SET remains.
    assert post(clickhouse, b"SELECT getSetting('max_threads')", session_id=session, max_threads="1").data == b"1\n"
    assert post(clickhouse, b"SELECT getSetting('max_threads')", session_id=session).data == b"3\n"
    # The session's values the front undoes URL settings to are kept between requests; its own SET
    # changes them, and the next request's URL setting is undone to the new value.
    post(clickhouse, b"SET max_threads = 2", session_id=session)
    assert post(clickhouse, b"SELECT getSetting('max_threads')", session_id=session, max_threads="1").data == b"1\n"
    assert post(clickhouse, b"SELECT getSetting('max_threads')", session_id=session).data == b"2\n"
    # So the settings that shape an answer: rows, then the session's SET makes them one JSON array.
    rows = b"SELECT toUInt8(number) AS n FROM numbers(2) FORMAT JSONEachRow"
    assert post(clickhouse, rows, session_id=session).data == b'{"n":0}\n{"n":1}\n'
    post(clickhouse, b"SET output_format_json_array_of_rows = 1", session_id=session)
    assert json.loads(post(clickhouse, rows, session_id=session).data) == [{"n": 0}, {"n": 1}]
    # Nothing leaks to requests without the session.
    assert post(clickhouse, b"SELECT currentDatabase()").data == b"default\n"
    assert post(clickhouse, b"SELECT sum(n) FROM tmp").status == 404


def test_the_timezone_header_names_the_session_timezone_the_statement_runs_with(clickhouse):
    """A server's X-ClickHouse-Timezone is the session_timezone in force (ClickHouse 24.5 on), from the
    statement's SETTINGS, the URL or the session's SET; clients read binary DateTime columns in it. It
    said the server's zone whatever the request set, so clickhouse-connect and the JDBC driver showed
    UTC times for a request that asked for New York's."""
    server_zone = post(clickhouse, b"SELECT timezone()").data.decode().strip()
    assert post(clickhouse, b"SELECT 1").headers["X-ClickHouse-Timezone"] == server_zone

    def zone(body: bytes, **params) -> str:
        response = post(clickhouse, body, **params)
        assert response.status == 200, response.data
        return response.headers["X-ClickHouse-Timezone"]

    assert zone(b"SELECT now()", session_timezone="America/New_York") == "America/New_York"
    assert zone(b"SELECT now() SETTINGS session_timezone = 'Asia/Tokyo'") == "Asia/Tokyo"
    assert zone(b"SELECT now() SETTINGS session_timezone = 'Asia/Tokyo' FORMAT JSON") == "Asia/Tokyo"
    assert zone(b"SELECT now() SETTINGS session_timezone = 'Asia/Tokyo'", session_timezone="Europe/Paris") == (
        "Asia/Tokyo"
    )  # the statement's own wins over the URL's, as it does for the statement
    assert zone(b"SELECT now() FORMAT TSVWithNamesAndTypes", session_timezone="Europe/Paris") == "Europe/Paris"
    assert zone(b"SELECT now()", session_timezone="") == server_zone

    session = uuid.uuid4().hex
    assert zone(b"SELECT now()", session_id=session) == server_zone
    post(clickhouse, b"SET session_timezone = 'Australia/Sydney'", session_id=session)
    assert zone(b"SELECT now()", session_id=session) == "Australia/Sydney"
    assert zone(b"SHOW DATABASES", session_id=session) == "Australia/Sydney"
    assert zone(b"SELECT now()", session_id=session, session_timezone="Europe/Paris") == "Europe/Paris"
    assert zone(b"SELECT now()", session_id=session) == "Australia/Sydney"
    assert zone(b"SELECT now()") == server_zone  # nothing leaks to requests without the session


@pytest.mark.parametrize(
    ("statement", "zone"),
    [
        ("SELECT 1", "Nowhere/Land"),
        ("SELECT 1 FORMAT JSON", "日本"),
        ("SELECT 1", "Europe/Paris\r\nX-Injected: 1"),
        ("SELECT 1 SETTINGS session_timezone = '日本'", None),
    ],
)
def test_a_zone_that_is_none_is_refused_with_the_servers_zone_in_the_header(clickhouse, statement, zone):
    # The header named the zone before chDB took it: one beyond Latin-1 or with a line break in it
    # left the client a plain 500 or no answer at all, where a server refuses it as any bad value.
    params = {"session_timezone": zone} if zone else {}
    refused = post(clickhouse, statement.encode(), **params)
    assert refused.status == 400 and refused.headers["X-ClickHouse-Exception-Code"] == "36", refused.data
    assert b"Invalid time zone" in refused.data
    assert refused.headers["X-ClickHouse-Timezone"] == post(clickhouse, b"SELECT 1").headers["X-ClickHouse-Timezone"]


@pytest.mark.parametrize(
    "statement", ["SET max_threads = 2", "CREATE TEMPORARY TABLE scratch (n UInt8)", "USE no_such_database"]
)
def test_a_requests_database_is_for_that_request_alone_and_use_chooses_the_sessions(clickhouse, db, statement):
    # After a SET, a CREATE TEMPORARY TABLE or a failed USE, the session went on in the request's database.
    session = uuid.uuid4().hex
    post(clickhouse, statement.encode(), session_id=session, database=db)
    assert post(clickhouse, b"SELECT currentDatabase()", session_id=session).data == b"default\n"
    # Only a USE changes the session's database, over the request's.
    assert post(clickhouse, f"USE {db}".encode(), session_id=session, database="system").status == 200
    assert post(clickhouse, b"SELECT currentDatabase()", session_id=session).data == f"{db}\n".encode()
    assert post(clickhouse, b"SELECT currentDatabase()", session_id=session, database="system").data == b"system\n"
    assert post(clickhouse, b"SELECT currentDatabase()", session_id=session).data == f"{db}\n".encode()


def test_session_less_set_and_use_do_not_leak(clickhouse, db):
    for _ in range(20):
        post(clickhouse, b"SET max_threads = 1")
        post(clickhouse, f"USE {db}".encode())
    for _ in range(20):
        assert post(clickhouse, b"SELECT currentDatabase(), getSetting('max_threads') = 1").data == b"default\t0\n"


def start_slow_query(clickhouse, **params) -> tuple[threading.Thread, dict]:
    """A query that sleeps, started in a thread; returns once ClickHouse runs it.

    Whether it runs is asked with a query of no session and a query id of its own (system.processes),
    so the probe can never take the session or the id the test is about before the slow query does.
    """
    marker = uuid.uuid4().hex
    results = {}

    def slow():
        results["slow"] = post(clickhouse, f"SELECT sleep(2) /* {marker} */".encode(), **params)

    thread = threading.Thread(target=slow)
    thread.start()
    probe = (
        "SELECT count() FROM system.processes"
        f" WHERE query LIKE '%sleep(2) /* {marker}%' AND query NOT LIKE '%processes%'"
    )
    for _ in range(600):
        if post(clickhouse, probe.encode()).data == b"1\n":
            return thread, results
        assert thread.is_alive(), results
        time.sleep(0.01)
    raise AssertionError("the slow query never showed in system.processes")


def test_a_small_max_query_size_refuses_its_own_statement_and_leaves_nothing_behind(clickhouse):
    refused = post(clickhouse, b"SELECT 1", max_query_size="5")
    assert (refused.status, refused.headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    assert b"Max query size exceeded" in refused.data
    assert post(clickhouse, b"SELECT 1", max_query_size="8").data == b"1\n"
    # Neither the pooled connections nor the session keep a limit their next statements cannot meet.
    assert [post(clickhouse, b"SELECT 2").data for _ in range(30)] == [b"2\n"] * 30
    session = {"session_id": f"tiny-{uuid.uuid4().hex[:8]}"}
    assert post(clickhouse, b"SELECT 1", max_query_size="8", **session).data == b"1\n"
    assert post(clickhouse, b"SELECT 3 AS three", **session).data == b"3\n"
    # An INSERT's limit is its statement's, not its data's.
    insert = "INSERT INTO system.numbers FORMAT TSV"
    assert (
        post(clickhouse, b"1\n" * 100, query=insert, max_query_size="10").headers["X-ClickHouse-Exception-Code"] == "62"
    )


@pytest.mark.parametrize(
    ("name", "value"), [("max_parser_depth", "1"), ("max_parser_backtracks", "1"), ("allow_ddl", "0")]
)
def test_a_setting_that_refuses_sets_does_not_pass_to_the_next_request(clickhouse, name, value):
    # Undoing it takes a SET the setting itself refuses: the connection is not handed on.
    post(clickhouse, b"SELECT 1", **{name: value})
    assert [post(clickhouse, b"SELECT 42").data for _ in range(30)] == [b"42\n"] * 30
    # In a session it cannot be undone either: the session ends, and its id starts a new one.
    session = {"session_id": f"refusing-{uuid.uuid4().hex[:8]}"}
    post(clickhouse, b"SELECT 1", **session, **{name: value})
    assert post(clickhouse, b"SELECT 42", **session).data == b"42\n"


def test_session_check_and_lock(clickhouse):
    missing = post(clickhouse, b"SELECT 1", session_id="never-created", session_check="1")
    assert missing.headers["X-ClickHouse-Exception-Code"] == "372"
    session = uuid.uuid4().hex
    thread, results = start_slow_query(clickhouse, session_id=session)
    busy = post(clickhouse, b"SELECT 1", session_id=session)
    thread.join()
    assert busy.headers["X-ClickHouse-Exception-Code"] == "373"
    assert results["slow"].status == 200
    assert post(clickhouse, b"SELECT 1", session_id=session).status == 200  # free again


@pytest.mark.parametrize("last", [b"SELECT sum(n) FROM tmp", b"SELECT sum(n) FROM no_such_table"])
def test_close_session_ends_the_session_after_its_request(clickhouse, last):
    """close_session=1, as a server reads it: the request runs in its session, answered or refused,
    and the session ends after it. It was taken and ignored: the session, its temporary tables and its
    settings lived on until their timeout."""
    session = uuid.uuid4().hex
    post(clickhouse, b"CREATE TEMPORARY TABLE tmp (n UInt8)", session_id=session)
    post(clickhouse, b"INSERT INTO tmp VALUES (5)", session_id=session)
    post(clickhouse, b"SET max_threads = 3", session_id=session)
    closing = post(clickhouse, last, session_id=session, close_session="1")
    assert closing.status == (200 if b"tmp" in last else 404)
    if closing.status == 200:
        assert closing.data == b"5\n"
    gone = post(clickhouse, b"SELECT 1", session_id=session, session_check="1")
    assert gone.headers["X-ClickHouse-Exception-Code"] == "372"
    fresh = post(clickhouse, b"SELECT getSetting('max_threads') = 3", session_id=session)
    assert fresh.data == b"0\n"  # the id starts a new session, without the old one's SET
    assert post(clickhouse, b"SELECT sum(n) FROM tmp", session_id=session).status == 404
    kept = uuid.uuid4().hex
    post(clickhouse, b"SELECT 1", session_id=kept, close_session="0")
    assert post(clickhouse, b"SELECT 1", session_id=kept, session_check="1").status == 200


def test_duplicate_running_query_id_is_refused(clickhouse):
    query_id = uuid.uuid4().hex
    thread, results = start_slow_query(clickhouse, query_id=query_id)
    duplicate = post(clickhouse, b"SELECT 1", query_id=query_id)
    thread.join()
    assert duplicate.headers["X-ClickHouse-Exception-Code"] == "216"
    assert results["slow"].status == 200
    assert post(clickhouse, b"SELECT 1", query_id=query_id).status == 200  # free again


MV_SETUP = """
CREATE TABLE {db}.src (n Int64) ENGINE = Null;
CREATE TABLE {db}.dst (n Int64) ENGINE = MergeTree ORDER BY n;
CREATE MATERIALIZED VIEW {db}.mv TO {db}.dst AS SELECT throwIf(n = 13, 'thirteen is refused') + n AS n FROM {db}.src
"""


@pytest.mark.parametrize("rows", [100, 400_000], ids=["small-body", "streamed-body"])
def test_insert_whose_view_fails_reports_the_error(clickhouse, db, rows):
    for statement in MV_SETUP.format(db=db).split(";"):
        assert post(clickhouse, statement.encode()).status == 200
    body = b"".join(b"%d\n" % (i + 20) for i in range(rows)) + b"13\n"
    response = post(clickhouse, body, query=f"INSERT INTO {db}.src FORMAT TSV")
    assert response.status == 500
    assert response.headers["X-ClickHouse-Exception-Code"] == "395"
    assert b"thirteen is refused" in response.data
    # Blocks before the refused row may have landed (an insert is not atomic across blocks).
    before = int(post(clickhouse, f"SELECT count() FROM {db}.dst".encode()).data)
    good = b"".join(b"%d\n" % (i + 20) for i in range(rows))
    assert post(clickhouse, good, query=f"INSERT INTO {db}.src FORMAT TSV").status == 200
    count = int(post(clickhouse, f"SELECT count() FROM {db}.dst".encode()).data)
    assert count - before == rows  # the good insert arrived in full
    assert post(clickhouse, f"SELECT countIf(n = 13) FROM {db}.dst".encode()).data == b"0\n"


def test_large_streamed_insert_with_a_bad_row_is_refused(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.big (n UInt32) ENGINE = MergeTree ORDER BY n".encode())

    def chunks():
        for start in range(0, 300_000, 50_000):
            yield b"".join(b"%d\n" % i for i in range(start, start + 50_000))
        yield b"not-a-number\n"

    response = HTTP.request(
        "POST",
        url(clickhouse, query=f"INSERT INTO {db}.big FORMAT TSV"),
        body=chunks(),
        chunked=True,
    )
    assert response.status == 400
    assert b"not-a-number" in response.data or b"CANNOT_PARSE" in response.data
    assert post(clickhouse, b"SELECT 1").data == b"1\n"


def test_wrong_credentials(clickhouse):
    response = post(clickhouse, b"SELECT 1", {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "wrong"})
    assert response.status == 403
    assert response.headers["X-ClickHouse-Exception-Code"] == "516"
    assert b"Authentication failed" in response.data
    unknown = post(clickhouse, b"SELECT 1", user="mallory")
    assert unknown.headers["X-ClickHouse-Exception-Code"] == "516"
