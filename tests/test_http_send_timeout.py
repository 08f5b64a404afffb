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
