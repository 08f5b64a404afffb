"""A request body that does not arrive whole inserts nothing, as in ClickHouse.

A client that goes away mid-body, or stops sending for longer than `http_receive_timeout`, gets
no rows inserted: the embedded server must not take the bytes it got for the whole body (an
INSERT reading a FIFO sees its closing as the end of the data). A stalled body fails with
ClickHouse's SOCKET_TIMEOUT instead of holding a worker for ever. Raw sockets: an HTTP client
library would not send half a body.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlencode

import pytest

from tests.http_support import db, post  # noqa: F401 - db is a fixture

BIG = 40_000  # rows of about 50 bytes: 2 MB, streamed through a FIFO (more than the 1 MiB read whole)


def rows(count: int) -> bytes:
    return b"".join(b'{"n":%d,"s":"row %d of a body that does not arrive whole"}\n' % (i, i) for i in range(count))


def start_insert(server, table: str, framing: str, sent: bytes, declared: int, **settings) -> socket.socket:
    """Opens a POST of an INSERT and sends ``sent`` of its body (whole rows), no more."""
    target = "/?" + urlencode({"query": f"INSERT INTO {table} FORMAT JSONEachRow", **settings})
    host, port = server.url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)))
    if framing == "chunked":
        head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        client.sendall(head + b"%x\r\n%s\r\n" % (len(sent), sent))
    else:
        head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {declared}\r\n\r\n".encode()
        client.sendall(head + sent)
    return client


def inserts_running(server, table: str) -> bool:
    running = f"SELECT count() FROM system.processes WHERE query_kind = 'Insert' AND query LIKE '%{table}%'"
    return post(server, running.encode()).data != b"0\n"


def count_when_done(server, table: str) -> int:
    """The table's rows once no INSERT into it runs any more."""
    deadline = time.monotonic() + 30
    while inserts_running(server, table):
        assert time.monotonic() < deadline, "the INSERT is still running"
        time.sleep(0.05)
    return int(post(server, f"SELECT count() FROM {table}".encode()).data)


def wait_for_insert(server, table: str) -> None:
    deadline = time.monotonic() + 30
    while not inserts_running(server, table):
        assert time.monotonic() < deadline, "the INSERT never started"
        time.sleep(0.05)


@pytest.fixture
def table(clickhouse, db):  # noqa: F811 - the fixture
    name = f"{db}.events"
    create = f"CREATE TABLE {name} (n UInt32, s String) ENGINE = MergeTree ORDER BY n"
    assert post(clickhouse, create.encode()).status == 200
    return name


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_client_gone_mid_body_inserts_nothing(clickhouse, table, framing):
    sent = rows(BIG)
    client = start_insert(clickhouse, table, framing, sent, declared=2 * len(sent))
    wait_for_insert(clickhouse, table)  # streaming: chDB has read rows of it already
    client.close()
    assert count_when_done(clickhouse, table) == 0
    # The server serves on, and a whole body is inserted whole.
    assert post(clickhouse, sent, query=f"INSERT INTO {table} FORMAT JSONEachRow").status == 200
    assert count_when_done(clickhouse, table) == BIG


@pytest.mark.parametrize("size", [BIG, 100], ids=["streamed", "small"])
def test_a_body_that_stops_arriving_fails_after_http_receive_timeout(clickhouse, table, size):
    sent = rows(size)
    client = start_insert(clickhouse, table, "chunked", sent, declared=0, http_receive_timeout=1)
    client.settimeout(30)
    answer = b""
    try:
        while b"ms)" not in answer and (received := client.recv(4096)):
            answer += received
    finally:
        client.close()
    head, _, text = answer.partition(b"\r\n\r\n")
    assert b"x-clickhouse-exception-code: 209" in head.lower(), answer
    # The request's own setting (1 s), not the server's default of 30.
    assert text.startswith(b"Code: 209. DB::Exception: Timeout exceeded while reading from socket (1000 ms)"), text
    assert count_when_done(clickhouse, table) == 0


def test_a_receive_timeout_that_is_not_a_positive_number_is_refused(clickhouse, table):
    answer = post(clickhouse, rows(3), query=f"INSERT INTO {table} FORMAT JSONEachRow", http_receive_timeout="soon")
    assert answer.headers["X-ClickHouse-Exception-Code"] == "72", answer.data
    assert b"http_receive_timeout must be a positive number of seconds, not 'soon'" in answer.data
    assert count_when_done(clickhouse, table) == 0
