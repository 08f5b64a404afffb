"""`cancel_http_readonly_queries_on_client_close`, read as a ClickHouse server reads it: a read-only
statement whose client closed its connection is cancelled, when the request asks for it (as
clickhouse-connect does on every query); without the setting, or for a statement that writes, it
runs on. A count over a huge range writes nothing until its end, so only the cancel can stop it."""

from __future__ import annotations

import socket
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


def test_without_the_setting_or_for_a_statement_that_writes_the_statement_runs_on(clickhouse):
    reads, writes = f"stays-{uuid.uuid4().hex[:8]}", f"stays-{uuid.uuid4().hex[:8]}"
    table = f"sink_{uuid.uuid4().hex[:8]}"
    post(clickhouse, f"CREATE TABLE {table} (n UInt64, t String) ENGINE = Null".encode())
    try:
        sent_and_left(clickhouse, ENDLESS.format(tag=reads), reads)
        insert = f"INSERT INTO {table} SELECT number, '{writes}' FROM numbers(10000000000000)"
        sent_and_left(clickhouse, insert, writes, cancel_http_readonly_queries_on_client_close=1)
        time.sleep(1.5)
        assert (running(clickhouse, reads), running(clickhouse, writes)) == (1, 1)
    finally:
        for tag in (reads, writes):
            post(clickhouse, f"KILL QUERY WHERE query LIKE '%{tag}%' AND query NOT LIKE '%KILL%' SYNC".encode())
        post(clickhouse, f"DROP TABLE {table}".encode())
