"""The ClickHouse HTTP interface at the wire level: what curl and every other HTTP client sees
(requests, bodies and their encodings; results and sessions: test_http_protocol_results.py)."""

from __future__ import annotations

import gzip
import json
import zlib

import lz4.frame
import pytest
import zstandard

from tests.http_support import HTTP, db, get, post, url  # noqa: F401 - db is a fixture


def test_ping_and_root(clickhouse):
    assert HTTP.request("GET", clickhouse.url + "/ping").data == b"Ok.\n"
    assert HTTP.request("GET", clickhouse.url + "/").data == b"Ok.\n"


def test_head_of_the_root_answers_as_a_health_check(clickhouse):
    # It answered 400 "Empty query", where a server answers 200.
    head = HTTP.request("HEAD", clickhouse.url + "/")
    assert head.status == 200 and head.data == b""
    assert HTTP.request("HEAD", url(clickhouse, query="SELECT 1")).status == 200


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


def test_a_query_id_is_taken_from_its_header_and_sent_back_as_a_server_sends_it(clickhouse, db):
    """A server takes the query id from `query_id`, else the X-ClickHouse-Query-Id header, drops its
    ASCII control characters and sends it back as UTF-8. A line break in it left the client no answer
    at all, and an id beyond Latin-1 a plain 500 after the statement had run (an insert's rows were
    in, and a client retrying it wrote them twice)."""
    from_header = post(clickhouse, b"SELECT 1", {"X-ClickHouse-Query-Id": "from-header-1"})
    assert from_header.status == 200 and from_header.headers["X-ClickHouse-Query-Id"] == "from-header-1"
    both = post(clickhouse, b"SELECT 1", {"X-ClickHouse-Query-Id": "from-header-2"}, query_id="from-url-2")
    assert both.headers["X-ClickHouse-Query-Id"] == "from-url-2"  # the URL's wins, as on a server

    split = post(clickhouse, b"SELECT 1", query_id="line\r\nX-Injected: 1\tend")
    assert split.status == 200 and split.data == b"1\n"
    assert split.headers["X-ClickHouse-Query-Id"] == "lineX-Injected: 1end"
    assert "X-Injected" not in split.headers

    assert post(clickhouse, f"CREATE TABLE {db}.t (x UInt8) ENGINE = MergeTree ORDER BY x".encode()).status == 200
    named = "загрузка-日本-1"
    inserted = post(clickhouse, b"1\n2\n", query=f"INSERT INTO {db}.t FORMAT TSV", query_id=named)
    assert inserted.status == 200, inserted.data
    assert inserted.headers["X-ClickHouse-Query-Id"].encode("latin-1").decode() == named
    assert post(clickhouse, f"SELECT count() FROM {db}.t".encode()).data == b"2\n"


def test_cors_header_when_asked_by_a_page_of_another_origin(clickhouse):
    """add_http_cors_header=1, as ClickHouse answers it: only to a request with an Origin (what a
    browser sends from a page elsewhere: a web SQL client), on answers, streamed ones and errors."""
    origin = {"Origin": "http://dashboards.example"}
    cors = "Access-Control-Allow-Origin"
    assert post(clickhouse, b"SELECT 1", origin, add_http_cors_header="1").headers[cors] == "*"
    streamed = post(clickhouse, b"SELECT number FROM numbers(300000)", origin, add_http_cors_header="1")
    assert streamed.headers[cors] == "*" and streamed.data.count(b"\n") == 300000
    refused = post(clickhouse, b"SELEC 1", origin, add_http_cors_header="1")
    assert refused.status == 400 and refused.headers[cors] == "*"
    assert cors not in post(clickhouse, b"SELECT 1", origin, add_http_cors_header="0").headers
    assert cors not in post(clickhouse, b"SELECT 1", add_http_cors_header="1").headers  # no Origin
    assert cors not in post(clickhouse, b"SELECT 1", origin).headers


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


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        (b"SELECT 'abc", b"Single quoted string is not closed: Syntax error: failed at position 8 ('abc)"),
        (b'SELECT "abc', b"Double quoted string is not closed: Syntax error: failed at position 8"),
        (b"SELECT `abc", b"Back quoted string is not closed: Syntax error: failed at position 8"),
        (b"SELECT 1 /* unfinished", b"Multiline comment is not closed: Syntax error: failed at position 10"),
        (b"SELECT $$abc", b"Syntax error: failed at position 8 ($$abc)"),
        (b"INSERT INTO t SELECT 'abc", b"Single quoted string is not closed"),
    ],
)
def test_a_statement_that_ends_inside_a_literal_is_a_syntax_error(clickhouse, statement, named):
    for response in (post(clickhouse, statement), get(clickhouse, query=statement.decode())):
        assert response.status == 400, response.data
        assert response.headers["X-ClickHouse-Exception-Code"] == "62"
        assert named in response.data, response.data


def test_a_form_without_a_query_leaves_the_url_s_query_and_a_broken_form_is_named(clickhouse):
    boundary = "b0undary"
    form = f'--{boundary}\r\nContent-Disposition: form-data; name="param_p"\r\n\r\nseven\r\n--{boundary}--\r\n'
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    answered = HTTP.request(
        "POST", url(clickhouse, query="SELECT {p:String} AS p FORMAT JSONEachRow"), body=form, headers=headers
    )
    assert answered.status == 200, answered.data
    assert json.loads(answered.data) == {"p": "seven"}
    nothing = HTTP.request("GET", url(clickhouse, query="SELECT 8"), headers=headers)
    assert (nothing.status, nothing.data) == (200, b"8\n")
    broken = HTTP.request("POST", url(clickhouse, query="SELECT 9"), body=b"\x00\x01 not a form", headers=headers)
    assert broken.status == 400, broken.data
    assert broken.headers["X-ClickHouse-Exception-Code"] == "117"
    assert broken.data.startswith(b"Code: 117. DB::Exception: Cannot read the multipart/form-data body")


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


INPUT = "INSERT INTO {db}.typed SELECT n * 10, upper(s) FROM input('n UInt32, s String') FORMAT {fmt}"


@pytest.mark.parametrize("where", ["url", "body"])
def test_insert_select_from_input_reads_the_rows_of_the_body(clickhouse, db, where):
    # The statement answered 200 and inserted nothing; a blank line in the rows ended them, and
    # chDB ran what followed it as SQL.
    post(clickhouse, f"CREATE TABLE {db}.typed (n UInt32, s String) ENGINE = MergeTree ORDER BY n".encode())
    post(clickhouse, f"CREATE TABLE {db}.kept (n UInt8) ENGINE = Memory".encode())
    statement = f"INSERT INTO {db}.typed SELECT length(s), upper(s) FROM input('s String') FORMAT TSV"
    rows = f"a\n\nDROP TABLE {db}.kept\n".encode()
    answer = (
        post(clickhouse, rows, query=statement)
        if where == "url"
        else post(clickhouse, statement.encode() + b"\n" + rows)
    )
    assert answer.status == 200, answer.data
    assert json.loads(answer.headers["X-ClickHouse-Summary"])["written_rows"] == "3"
    dropped = f"DROP TABLE {db}.kept"
    assert post(clickhouse, f"SELECT n, s FROM {db}.typed ORDER BY n".encode()).data == (
        f"0\t\n1\tA\n{len(dropped)}\t{dropped.upper()}\n".encode()
    )
    assert post(clickhouse, f"EXISTS TABLE {db}.kept".encode()).data == b"1\n"


def test_insert_select_from_input_streams_a_large_body_and_refuses_a_bad_row(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.typed (n UInt32, s String) ENGINE = MergeTree ORDER BY n".encode())
    rows = b"".join(b'%d,"row %d"\n' % (i, i) for i in range(200_000))  # over the 1 MiB read whole
    assert post(clickhouse, rows, query=INPUT.format(db=db, fmt="CSV")).status == 200
    assert post(clickhouse, f"SELECT count(), max(n) FROM {db}.typed".encode()).data == b"200000\t1999990\n"
    bad = post(clickhouse, b"1,x\nnot a number,y\n", query=INPUT.format(db=db, fmt="CSV"))
    assert bad.headers["X-ClickHouse-Exception-Code"] == "27"
    assert b".rows" not in bad.data and b"/tmp" not in bad.data  # no temporary file of the front
    assert post(clickhouse, f"SELECT count() FROM {db}.typed".encode()).data == b"200000\n"


def test_data_after_insert_select_without_input_is_never_sql(clickhouse, db):
    # As on a server, nothing reads it; before, it was pasted after the statement.
    post(clickhouse, f"CREATE TABLE {db}.kept (n UInt8) ENGINE = Memory".encode())
    body = f"INSERT INTO {db}.kept SELECT 7 FORMAT TSV\nrubbish\n\nDROP TABLE {db}.kept\n".encode()
    assert post(clickhouse, body).status == 200
    assert post(clickhouse, f"SELECT n FROM {db}.kept".encode()).data == b"7\n"


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
