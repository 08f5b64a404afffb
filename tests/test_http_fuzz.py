"""Requests to the ClickHouse HTTP interface put together at random (seeded) from odd statements,
settings, headers and bodies: each is answered, or refused with ClickHouse's exception code, and
none fails inside the front (UNKNOWN_EXCEPTION, or a server error without a code); the server
answers afterwards. A failure names the seed and the request."""

from __future__ import annotations

import gzip
import random
import uuid
import zlib
from urllib.parse import urlencode

from tests.http_support import HTTP, post

SEED = 20261206
STATEMENTS = [
    "SELECT 1", "SELECT * FROM {db}.t", "INSERT INTO {db}.t FORMAT JSONEachRow", "INSERT INTO {db}.t VALUES",
    "INSERT INTO {db}.t FORMAT Native", "INSERT INTO {db}.t FORMAT RowBinary", "INSERT INTO {db}.t FORMAT CSV",
    "INSERT INTO {db}.t SELECT 'a', 1", "SELECT {{p:String}}", "SELECT {{p:UInt8}}", "SHOW TABLES FROM {db}",
    "SELECT number FROM numbers(100000) FORMAT Native", "SELECT 1 FORMAT JSON", "SELECT 1; SELECT 2", "", " ",
    "SELEC", "INSERT INTO {db}.t", "SELECT '\u0000'", "SELECT * FROM file('x')", "SET max_threads = 1",
    "SELECT 1 SETTINGS max_threads = 'x'", "EXISTS {db}.t", "DESCRIBE {db}.t", "SELECT 1 FORMAT Parquet",
    "SELECT 1 FORMAT ArrowStream", "WITH 1 AS x SELECT x",
    "SELECT name FROM system.tables LIMIT 1 FORMAT TSVWithNamesAndTypes",
    "SELECT 'unclosed", "SELECT `unclosed", "SELECT 1 /* unclosed",
]  # fmt: skip
SETTINGS = {
    "max_threads": ["1", "0", "-1", "x", ""], "async_insert": ["1", "0", "x", "true", "2"],
    "wait_for_async_insert": ["0", "1", "y"], "compress": ["1", "0"], "decompress": ["1"],
    "enable_http_compression": ["1", "x"], "database": ["default", "nope", "", "a'b"],
    "default_format": ["JSON", "Nope", "Native", "TSV"], "query_id": ["", "x" * 300],
    "session_id": ["fuzz-session", ""], "session_timeout": ["1", "-1", "x", "99999999"], "session_check": ["1"],
    "param_p": ["x", "300", "", "\u0000"], "wait_end_of_query": ["1"], "readonly": ["1", "2", "x"],
    "max_result_rows": ["1"], "result_overflow_mode": ["break"], "client_protocol_version": ["54460", "x", "0"],
    "http_receive_timeout": ["1", "x"], "user": ["default", "nobody", ""], "password": ["", "x"],
    "max_query_size": ["1", "10", "x"], "http_zlib_compression_level": ["9", "x"],
    "async_insert_busy_timeout_ms": ["0", "x", "10"], "network_compression_method": ["zstd", "lz4", "x"],
}  # fmt: skip
HEADERS = {
    "Content-Encoding": ["gzip", "deflate", "br", "zstd", "lz4", "x"], "Accept-Encoding": ["gzip", "zstd", "br", "x"],
    "X-ClickHouse-User": ["default", "x"], "X-ClickHouse-Key": ["", "x"],
    "Authorization": ["Basic eA==", "Bearer x", "Basic !!!"], "X-ClickHouse-Format": ["JSON", "x"],
    "X-ClickHouse-Database": ["default", "x"], "Content-Type": ["multipart/form-data; boundary=x", "text/plain"],
}  # fmt: skip


def test_random_requests_are_answered_or_refused_with_a_code_never_failing_inside(clickhouse):
    rng = random.Random(SEED)
    db = f"fuzz_{uuid.uuid4().hex[:10]}"
    post(clickhouse, f"CREATE DATABASE {db}".encode())
    post(clickhouse, f"CREATE TABLE {db}.t (a String, b UInt64) ENGINE = MergeTree ORDER BY a".encode())
    form = b'--x\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT 1\r\n--x--\r\n'
    bodies = [
        b"", b'{"a":"x","b":1}', b"('x', 1)", b"x,1", b"\x00\x01\x02", b"\x1f\x8b\x08\x00garbage", b"SELECT 1", form,
        gzip.compress(b'{"a":"g","b":2}'), zlib.compress(b"SELECT 2"), bytes(rng.randrange(256) for _ in range(300)),
        b"\n\n\nSELECT 3",
    ]  # fmt: skip
    for _ in range(600):
        params = {"query": rng.choice(STATEMENTS).format(db=db)} if rng.random() < 0.85 else {}
        for _ in range(rng.randrange(4)):
            name = rng.choice(list(SETTINGS))
            params[name] = rng.choice(SETTINGS[name])
        headers = {name: rng.choice(HEADERS[name]) for name in rng.sample(list(HEADERS), rng.randrange(3))}
        method = rng.choice(["POST", "POST", "POST", "GET", "HEAD"])
        body = rng.choice(bodies) if method == "POST" else None
        target = clickhouse.url + "/" + ("?" + urlencode(params) if params else "")
        response = HTTP.request(method, target, body=body, headers=headers)
        code = response.headers.get("X-ClickHouse-Exception-Code")
        context = (SEED, method, params, headers, body[:80] if body else None, response.status, response.data[:300])
        assert response.status < 500 or code not in (None, "1000", "1001", "1002"), context
    assert HTTP.request("GET", clickhouse.url + "/ping").data == b"Ok.\n"
