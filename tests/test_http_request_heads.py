"""A request's head (its line and headers) is bounded in size and in time, as ClickHouse bounds it:
a client can neither fill the server's memory with headers nor hold a connection open by sending
its head a byte at a time (embedded/request_heads.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator

import pytest
import uvicorn

from embedded.kafka.broker import free_port
from embedded.request_heads import MAX_HEAD_BYTES, MAX_URI_BYTES, BoundedHeadProtocol


def exchange(port: int, *pieces: bytes, pause: float = 0.0, timeout: float = 10.0) -> bytes:
    """Send `pieces` (waiting `pause` between them) on a new connection; everything it answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        for piece in pieces:
            try:
                connection.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed before the rest was sent
            time.sleep(pause)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def test_a_head_too_large_is_refused_and_the_server_serves_on(clickhouse):
    headers = b"".join(b"X-Padding-%d: %s\r\n" % (n, b"a" * 100_000) for n in range(30))  # 3 MB
    answer = exchange(clickhouse.port, b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert f"exceed {MAX_HEAD_BYTES:,} bytes".encode() in answer
    served = exchange(clickhouse.port, b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert served.startswith(b"HTTP/1.1 200 ") and served.endswith(b"\r\n1\n"), served


def test_a_query_in_a_url_runs_up_to_clickhouses_uri_limit(clickhouse):
    def get(query: str, *extra: str) -> bytes:
        url = "/?" + urllib.parse.urlencode({"query": query, **dict(pair.split("=") for pair in extra)})
        return exchange(clickhouse.port, f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())

    for length in (60_000, 70_000, 900_000):  # 65,535 bytes is all httptools' URL parser takes
        served = get(f"SELECT length('{'a' * length}')", "default_format=TSV", "max_query_size=1000000")
        assert served.startswith(b"HTTP/1.1 200 ") and served.endswith(f"\r\n{length}\n".encode()), served[-200:]
    refused = get(f"SELECT length('{'a' * MAX_URI_BYTES}')")
    assert refused.startswith(b"HTTP/1.1 414 "), refused[:200]
    assert f"longer than {MAX_URI_BYTES:,} bytes".encode() in refused and b"body of a POST" in refused


class QuickHeads(BoundedHeadProtocol):
    head_timeout_s = 1.0
    max_head_bytes = 100_000


async def answer_ok(scope, receive, send) -> None:
    """200 with the size of the body; on /slow, two seconds later (longer than a head may take)."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(2.0)
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"got %d bytes" % len(body)})


@pytest.fixture
def quick_heads_server() -> Iterator[int]:
    """uvicorn serving a trivial app over BoundedHeadProtocol, a head timed out after 1 s and at most 100,000 bytes."""
    port = free_port()
    config = uvicorn.Config(answer_ok, host="127.0.0.1", port=port, http=QuickHeads, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


def test_a_head_sent_a_byte_at_a_time_is_cut_off(quick_heads_server):
    started = time.monotonic()
    trickle = [b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "] + [b"z"] * 40
    answer = exchange(quick_heads_server, *trickle, pause=0.1)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"did not arrive within 1 s" in answer
    assert time.monotonic() - started < 3.5  # not the 4 s the trickle would have taken


def test_a_connection_that_sends_nothing_is_closed(quick_heads_server):
    started = time.monotonic()
    assert exchange(quick_heads_server) == b""
    assert time.monotonic() - started < 3.5


def test_a_slow_body_and_a_kept_connection_are_not_heads(quick_heads_server):
    # The head arrives at once; its body a second later: only the head is timed.
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    answer = exchange(quick_heads_server, head, b"hello", pause=1.5)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"got 5 bytes" in answer, answer
    # A body larger than any head may be: only the head is counted.
    big = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\nConnection: close\r\n\r\n"
    answer = exchange(quick_heads_server, big, *[b"b" * 100_000] * 30)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"got 3000000 bytes" in answer, answer[:300]
    # Two requests on one connection, the second after a pause longer than the head timeout.
    first = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = exchange(quick_heads_server, first, second, pause=1.5)
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer
    # A connection's first head is timed from its first byte, not from when the connection opened.
    answer = exchange(
        quick_heads_server, b"", b"GET / HTTP/1.1\r\n", b"Host: x\r\nConnection: close\r\n\r\n", pause=0.7
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer


@pytest.mark.parametrize(
    ("next_head", "refusal"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Sl", b"HTTP/1.1 408 "),  # and nothing more: too slow
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 200_000, b"HTTP/1.1 431 "),  # too large
    ],
    ids=["too-slow", "too-large"],
)
def test_a_refused_head_pipelined_behind_an_answer_waits_for_the_answer_to_end(quick_heads_server, next_head, refusal):
    """The refusal came in the middle of the answer before it, cutting it; or before it, losing it."""
    answer = exchange(quick_heads_server, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + next_head)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    first, _, second = answer.partition(refusal)
    assert first.endswith(b"got 0 bytes\r\n0\r\n\r\n"), first  # the whole chunked answer, then the refusal
    assert second, answer
