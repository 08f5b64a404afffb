"""A client that stops reading an answer is given up on after `http_send_timeout`, as in ClickHouse.

Without it the query, its chDB connection and the server's stop would wait for that client for
ever. A raw socket with a small receive buffer that reads nothing stands for the client.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlencode

from tests.http_support import post

QUERY = "SELECT number, toString(number) FROM numbers(100000000)"
RUNNING = "SELECT count() FROM system.processes WHERE query LIKE 'SELECT number, toString(number)%'"


def stalled_reader(server, **settings) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, int(port)))
    target = "/?" + urlencode({"query": QUERY, **settings})
    client.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return client


def test_an_answer_nobody_reads_ends_after_http_send_timeout_and_its_query_with_it(clickhouse):
    client = stalled_reader(clickhouse, http_send_timeout=1)
    try:
        deadline = time.monotonic() + 5
        while post(clickhouse, RUNNING.encode()).data == b"0\n":  # under way, held by the client
            assert time.monotonic() < deadline, "the query never started"
            time.sleep(0.05)
        deadline = time.monotonic() + 20  # 1 s without progress, then the clean-up
        while post(clickhouse, RUNNING.encode()).data != b"0\n":
            assert time.monotonic() < deadline, "the query still runs for a client that reads nothing"
            time.sleep(0.1)
        # The server closed the connection: what the buffers held, then the end, never the whole answer.
        client.settimeout(30)
        received = 0
        while chunk := client.recv(1 << 20):
            received += len(chunk)
        assert 0 < received < 100_000_000
    finally:
        client.close()
    assert post(clickhouse, b"SELECT 1").data == b"1\n"  # and serves on


def test_a_send_timeout_that_is_not_a_positive_number_is_refused(clickhouse):
    answer = post(clickhouse, b"SELECT 1", http_send_timeout="0")
    assert answer.headers["X-ClickHouse-Exception-Code"] == "72", answer.data
    assert b"http_send_timeout must be a positive number of seconds, not '0'" in answer.data


def test_a_pipelined_answer_whose_headers_cannot_be_sent_ends_its_query_and_frees_its_id(clickhouse):
    """Two requests on one connection whose client reads nothing: the second answer's headers wait
    behind the first's 40 MB and time out before its first byte. Its query kept its id (a query of
    the same id was refused as running), its chDB connection, and ran on."""
    host, port = clickhouse.url.removeprefix("http://").split(":")
    whole = "SELECT number, repeat('x', 100) FROM numbers(400000) GROUP BY number WITH TOTALS FORMAT TSV"
    streamed = "SELECT number FROM numbers(10000000) SETTINGS max_block_size=1000 FORMAT TSV"

    def request(settings: dict) -> bytes:
        return f"POST /?{urlencode(settings)} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n".encode()

    gave_up = "the client took none of the answer for 1 s"
    earlier = clickhouse.log().count(gave_up)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, int(port)))
    try:
        client.sendall(
            request({"query": whole, "query_id": "pipelined-whole"})
            + request({"query": streamed, "query_id": "pipelined-streamed", "http_send_timeout": "1"})
        )
        deadline = time.monotonic() + 30
        while clickhouse.log().count(gave_up) == earlier:  # the second answer timed out
            assert time.monotonic() < deadline, "the server never gave up on the client"
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while post(clickhouse, b"SELECT 1", query_id="pipelined-streamed").status != 200:
            assert time.monotonic() < deadline, "the query id stayed taken by an answer that ended"
            time.sleep(0.2)
        running = b"SELECT count() FROM system.processes WHERE query LIKE '%numbers(10000000)%' AND query_id != ''"
        deadline = time.monotonic() + 30
        while post(clickhouse, running + b" AND query NOT LIKE '%system.processes%'").data != b"0\n":
            assert time.monotonic() < deadline, "the query of an answer that ended still runs"
            time.sleep(0.2)
    finally:
        client.close()
