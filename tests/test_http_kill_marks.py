"""Statements killed as a ClickHouse server kills them, though chDB gives each its own query id:
`KILL QUERY WHERE query_id = '<the id the client sent>'` ends it, and with
`cancel_http_readonly_queries_on_client_close` (clickhouse-connect sends it on every query) a
read-only statement whose client closed its connection is cancelled, and so is one whose whole
result the front builds before sending any (formats with a header); otherwise, without the setting,
or for a statement that writes, it runs on. A count over a huge range writes nothing until its end, so only
a kill can stop it."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from urllib.parse import urlencode

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from tests.http_support import post

ENDLESS = "SELECT count(), '{tag}' FROM numbers(10000000000000)"


def running(server, tag: str) -> int:
    sql = f"SELECT count() FROM system.processes WHERE query LIKE '%{tag}%' AND query NOT LIKE '%system.processes%'"
    return int(post(server, sql.encode()).data)


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def sent_and_left(server, statement: str, tag: str, **settings) -> None:
    """A client that sends the statement, waits until it runs, and closes its connection."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        target = "/?" + urlencode({"query": statement, **settings})
        client.sendall(f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n".encode())
        wait_until(lambda: running(server, tag) == 1, 10, "the statement never started")


def test_a_read_only_query_ends_when_its_clickhouse_connect_client_gives_up(clickhouse):
    tag = f"gone-{uuid.uuid4().hex[:8]}"
    host, port = clickhouse.url.removeprefix("http://").split(":")
    client = clickhouse_connect.get_client(host=host, port=int(port), send_receive_timeout=1)
    with pytest.raises(OperationalError, match="timed out"):
        client.query(ENDLESS.format(tag=tag))
    wait_until(lambda: running(clickhouse, tag) == 0, 10, "the query still runs for a client that left")
    assert client.query("SELECT 1").result_rows == [(1,)]  # and the server serves on


@pytest.mark.parametrize("session", [False, True])
def test_a_read_only_query_ends_when_its_client_closes_the_connection(clickhouse, session):
    tag = f"gone-{uuid.uuid4().hex[:8]}"
    settings = {"session_id": f"s-{tag}"} if session else {}
    sent_and_left(clickhouse, ENDLESS.format(tag=tag), tag, cancel_http_readonly_queries_on_client_close=1, **settings)
    wait_until(lambda: running(clickhouse, tag) == 0, 10, "the query still runs for a client that left")


@pytest.mark.parametrize(("fmt", "session"), [("TSVWithNames", False), ("RowBinaryWithNamesAndTypes", True)])
def test_a_result_built_whole_before_it_is_sent_ends_when_its_client_goes_without_the_setting(clickhouse, fmt, session):
    # A server streams these formats and stops at its first write to a closed connection; the
    # front spools their whole result first, so nothing would tell it the client went.
    tag = f"spool-{uuid.uuid4().hex[:8]}"
    rare = f"SELECT number, '{tag}' FROM numbers(10000000000000) WHERE number % 1000000000 = 7 FORMAT {fmt}"
    sent_and_left(clickhouse, rare, tag, **({"session_id": f"s-{tag}"} if session else {}))
    wait_until(lambda: running(clickhouse, tag) == 0, 10, "the statement still runs for a client that left")


def test_without_the_setting_or_for_a_statement_that_writes_the_statement_runs_on(clickhouse):
    reads, writes = f"stays-{uuid.uuid4().hex[:8]}", f"stays-{uuid.uuid4().hex[:8]}"
    table = f"sink_{uuid.uuid4().hex[:8]}"
    post(clickhouse, f"CREATE TABLE {table} (n UInt64, t String) ENGINE = Null".encode())
    try:
        sent_and_left(clickhouse, ENDLESS.format(tag=reads), reads, query_id=reads)
        insert = f"INSERT INTO {table} SELECT number, '{writes}' FROM numbers(10000000000000)"
        sent_and_left(clickhouse, insert, writes, cancel_http_readonly_queries_on_client_close=1, query_id=writes)
        time.sleep(1.5)
        assert (running(clickhouse, reads), running(clickhouse, writes)) == (1, 1)
    finally:
        for tag in (reads, writes):  # by the ids the clients gave them
            post(clickhouse, f"KILL QUERY WHERE query_id = '{tag}' SYNC".encode())
        post(clickhouse, f"DROP TABLE {table}".encode())
    assert (running(clickhouse, reads), running(clickhouse, writes)) == (0, 0)


def test_kill_query_finds_a_statement_by_the_query_id_its_client_sent(clickhouse):
    tag = f"kill-{uuid.uuid4().hex[:8]}"
    answers = []
    waiting = threading.Thread(
        target=lambda: answers.append(post(clickhouse, ENDLESS.format(tag=tag).encode(), query_id=tag))
    )
    waiting.start()
    wait_until(lambda: running(clickhouse, tag) == 1, 10, "the statement never started")
    killed = post(clickhouse, f"KILL QUERY WHERE query_id = '{tag}' SYNC FORMAT TSV".encode())
    assert killed.status == 200 and killed.data.startswith(b"finished\t"), killed.data
    waiting.join(30)
    assert answers[0].headers["X-ClickHouse-Exception-Code"] == "394", answers[0].data  # QUERY_WAS_CANCELLED
    assert running(clickhouse, tag) == 0
    # A KILL that finds nothing answers nothing.
    assert post(clickhouse, f"KILL QUERY WHERE query_id = 'no-{tag}' SYNC".encode()).data == b""
