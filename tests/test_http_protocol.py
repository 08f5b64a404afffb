"""The ClickHouse HTTP interface at the wire level: what curl and every other HTTP client sees."""

from __future__ import annotations

import gzip
import io
import json
import threading
import time
import uuid
import zlib
from urllib.parse import urlencode

import lz4.frame
import pyarrow.parquet as pq
import pytest
import urllib3
import zstandard

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=120))


def url(server, **params) -> str:
    return server.url + "/" + ("?" + urlencode(params) if params else "")


def post(server, body=b"", headers=None, **params):
    return HTTP.request("POST", url(server, **params), body=body, headers=headers or {})


def get(server, **params):
    return HTTP.request("GET", url(server, **params))


@pytest.fixture
def db(clickhouse):
    database = f"wire_{uuid.uuid4().hex[:10]}"
    assert post(clickhouse, f"CREATE DATABASE {database}".encode()).status == 200
    yield database
    post(clickhouse, f"DROP DATABASE IF EXISTS {database}".encode())


def test_ping_and_root(clickhouse):
    assert HTTP.request("GET", clickhouse.url + "/ping").data == b"Ok.\n"
    assert HTTP.request("GET", clickhouse.url + "/").data == b"Ok.\n"


def test_query_in_url_body_or_both(clickhouse):
    assert get(clickhouse, query="SELECT 1").data == b"1\n"
    assert post(clickhouse, b"SELECT 2").data == b"2\n"
    # ClickHouse joins the query parameter and the body with a line break.
    assert post(clickhouse, b"+ 40", query="SELECT 2").data == b"42\n"


def test_result_headers(clickhouse):
    response = post(clickhouse, b"SELECT 1 AS x", query_id="my-query-1", default_format="JSONEachRow")
    assert response.status == 200
    assert response.data == b'{"x":1}\n'
    headers = response.headers
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert headers["X-ClickHouse-Query-Id"] == "my-query-1"
    assert headers["X-ClickHouse-Timezone"]
    assert headers["X-ClickHouse-Server-Display-Name"]
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert set(summary) >= {"read_rows", "written_rows", "elapsed_ns", "result_rows"}


def test_format_header_only_for_statements_with_a_result(clickhouse, db):
    created = post(clickhouse, f"CREATE TABLE {db}.t (x UInt8) ENGINE = Memory".encode())
    assert created.status == 200
    assert "X-ClickHouse-Format" not in created.headers
    inserted = post(clickhouse, f"INSERT INTO {db}.t VALUES (1), (2)".encode())
    assert "X-ClickHouse-Format" not in inserted.headers
    assert json.loads(inserted.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    empty = post(clickhouse, f"SELECT x FROM {db}.t WHERE x > 5".encode())
    assert empty.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert empty.data == b""
    shown = post(clickhouse, f"SHOW TABLES FROM {db}".encode())
    assert shown.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert shown.data == b"t\n"
    described = post(clickhouse, f"DESCRIBE TABLE {db}.t FORMAT JSONEachRow".encode())
    assert described.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert json.loads(described.data.splitlines()[0])["name"] == "x"


def test_format_clause_wins_over_default_format(clickhouse):
    response = post(clickhouse, b"SELECT 7 AS seven FORMAT CSVWithNames", default_format="JSON")
    assert response.headers["X-ClickHouse-Format"] == "CSVWithNames"
    assert response.data == b'"seven"\n7\n'


def test_database_parameter(clickhouse, db):
    post(clickhouse, b"CREATE TABLE only_here (x UInt8) ENGINE = Memory", database=db)
    assert post(clickhouse, b"SELECT count() FROM only_here", database=db).data == b"0\n"
    assert post(clickhouse, b"SELECT currentDatabase()").data == b"default\n"  # nothing leaked


def test_error_format_status_and_header(clickhouse):
    response = post(clickhouse, b"SELEC 1")
    assert response.status == 400
    assert response.headers["X-ClickHouse-Exception-Code"] == "62"
    assert response.data.startswith(b"Code: 62. DB::Exception: Syntax error")
    assert b"(SYNTAX_ERROR) (version " in response.data
    missing = post(clickhouse, b"SELECT * FROM default.nope")
    assert missing.status == 404
    assert missing.headers["X-ClickHouse-Exception-Code"] == "60"


def test_multi_statements_are_refused(clickhouse):
    response = post(clickhouse, b"SELECT 1; SELECT 2")
    assert response.status == 400
    assert b"Multi-statements are not allowed" in response.data
    assert post(clickhouse, b"SELECT 1;").data == b"1\n"  # one trailing semicolon is fine


def test_empty_query(clickhouse):
    response = post(clickhouse, b"  \n")
    assert response.status == 400
    assert b"Empty query" in response.data


def test_query_parameters_in_url_and_multipart_form(clickhouse):
    hostile = "x'); DROP DATABASE default; --\\"
    # Parameter values use ClickHouse's escaped text form, so a backslash travels as two.
    by_url = post(
        clickhouse,
        b"SELECT {p:String} AS p, {n:UInt8} + 1 AS n FORMAT JSONEachRow",
        param_p=hostile.replace("\\", "\\\\"),
        param_n="41",
    )
    assert json.loads(by_url.data) == {"p": hostile, "n": 42}
    by_form = HTTP.request(
        "POST",
        clickhouse.url + "/",
        fields={"query": "SELECT {p:String} AS p FORMAT JSONEachRow", "param_p": "form value"},
    )
    assert by_form.status == 200, by_form.data
    assert json.loads(by_form.data) == {"p": "form value"}


def test_external_data_in_a_form_is_refused_clearly(clickhouse):
    response = HTTP.request(
        "POST",
        clickhouse.url + "/",
        fields={"query": "SELECT * FROM ext", "ext": ("ext.tsv", b"1\n", "text/plain")},
    )
    assert response.status == 501
    assert b"External data" in response.data


def test_insert_with_data_in_body_plain_and_chunked(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.rows (n UInt32, s String) ENGINE = MergeTree ORDER BY n".encode())
    body = b"".join(b"%d\tline %d\n" % (i, i) for i in range(1000))
    assert post(clickhouse, body, query=f"INSERT INTO {db}.rows FORMAT TSV").status == 200

    def chunks():
        for start in range(1000, 3000, 250):
            yield b"".join(b"%d\tline %d\n" % (i, i) for i in range(start, start + 250))

    chunked = HTTP.request(
        "POST",
        url(clickhouse, query=f"INSERT INTO {db}.rows FORMAT TSV"),
        body=chunks(),
        chunked=True,
    )
    assert chunked.status == 200, chunked.data
    assert post(clickhouse, f"SELECT count(), sum(n) FROM {db}.rows".encode()).data == b"3000\t4498500\n"


def test_statement_and_rows_in_the_body_with_blank_lines(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.lines (s String) ENGINE = MergeTree ORDER BY s".encode())
    # A blank line inside the data must be data (one empty string), never the end of it.
    body = f"INSERT INTO {db}.lines FORMAT TSV\nfirst\n\nSELECT 'not executed'\n".encode()
    assert post(clickhouse, body).status == 200
    rows = post(clickhouse, f"SELECT s FROM {db}.lines ORDER BY s FORMAT JSONEachRow".encode()).data.splitlines()
    assert [json.loads(row)["s"] for row in rows] == ["", "SELECT 'not executed'", "first"]


def test_insert_values_statement(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.v (n UInt8, s String) ENGINE = Memory".encode())
    assert post(clickhouse, f"INSERT INTO {db}.v (n, s) VALUES (1, 'a'), (2, 'it''s')".encode()).status == 200
    assert post(clickhouse, f"SELECT n, s FROM {db}.v ORDER BY n".encode()).data == b"1\ta\n2\tit\\'s\n"


@pytest.mark.parametrize(
    "encoding, compress",
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("zstd", lambda data: zstandard.ZstdCompressor().compress(data)),
        ("lz4", lz4.frame.compress),
    ],
)
def test_compressed_request_bodies(clickhouse, db, encoding, compress):
    post(clickhouse, f"CREATE TABLE {db}.c (n UInt32) ENGINE = MergeTree ORDER BY n".encode())
    data = b"".join(b"%d\n" % i for i in range(5000))
    response = post(clickhouse, compress(data), {"Content-Encoding": encoding}, query=f"INSERT INTO {db}.c FORMAT TSV")
    assert response.status == 200, response.data
    # The statement itself may be compressed too.
    statement = compress(f"INSERT INTO {db}.c FORMAT TSV\n5000\n".encode())
    assert post(clickhouse, statement, {"Content-Encoding": encoding}).status == 200
    assert post(clickhouse, f"SELECT count(), sum(n) FROM {db}.c".encode()).data == b"5001\t12502500\n"


def test_several_compressed_frames_in_one_body(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.f (n UInt32) ENGINE = Memory".encode())
    body = zstandard.ZstdCompressor().compress(b"1\n2\n") + zstandard.ZstdCompressor().compress(b"3\n")
    response = post(clickhouse, body, {"Content-Encoding": "zstd"}, query=f"INSERT INTO {db}.f FORMAT TSV")
    assert response.status == 200, response.data
    assert post(clickhouse, f"SELECT sum(n) FROM {db}.f".encode()).data == b"6\n"


def test_corrupt_or_unknown_body_encoding_is_a_clear_error(clickhouse):
    corrupt = post(clickhouse, b"definitely not gzip", {"Content-Encoding": "gzip"})
    assert corrupt.status == 500
    assert corrupt.headers["X-ClickHouse-Exception-Code"] == "271"
    unknown = post(clickhouse, b"SELECT 1", {"Content-Encoding": "compress-o-matic"})
    assert unknown.headers["X-ClickHouse-Exception-Code"] == "89"


@pytest.mark.parametrize(
    "encoding, decompress",
    [
        ("gzip", gzip.decompress),
        ("deflate", zlib.decompress),
        ("zstd", lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data)),
        ("lz4", lz4.frame.decompress),
    ],
)
def test_compressed_responses_when_asked(clickhouse, encoding, decompress):
    query = "SELECT number FROM numbers(100000)"
    response = HTTP.request(
        "POST",
        clickhouse.url + "/?enable_http_compression=1",
        body=query.encode(),
        headers={"Accept-Encoding": encoding},
        decode_content=False,
    )
    assert response.headers["Content-Encoding"] == encoding
    assert decompress(response.data) == b"".join(b"%d\n" % i for i in range(100000))
    # Without enable_http_compression=1 the answer is not compressed, as in ClickHouse.
    plain = HTTP.request(
        "POST", clickhouse.url + "/", body=query.encode(), headers={"Accept-Encoding": encoding}, decode_content=False
    )
    assert "Content-Encoding" not in plain.headers


MULTI_BLOCK = "SELECT number AS n, toString(number) AS s FROM numbers(200000)"


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
    # Nothing leaks to requests without the session.
    assert post(clickhouse, b"SELECT currentDatabase()").data == b"default\n"
    assert post(clickhouse, b"SELECT sum(n) FROM tmp").status == 404


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
    good = b"".join(b"%d\n" % (i + 20) for i in range(rows))
    assert post(clickhouse, good, query=f"INSERT INTO {db}.src FORMAT TSV").status == 200
    count = int(post(clickhouse, f"SELECT count() FROM {db}.dst".encode()).data)
    assert count >= rows  # the good insert arrived in full
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
