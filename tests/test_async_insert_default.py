"""`analytics clickhouse --async-insert`: a server whose default profile joins small inserts.

Senders that say nothing are joined; whoever must be inserted on its own says `async_insert=0`:
a request, or a ClickHouseSink built with `async_insert=False`.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from events import ClickHouseSink, Event
from tests import embedded_server
from tests.events_support import JOINING_WINDOW, together
from tests.intake import HTTP


@pytest.fixture(scope="module")
def joining(tmp_path_factory):
    server = embedded_server.start(tmp_path_factory.mktemp("joining") / "data", None, "--async-insert")
    yield server
    server.stop()


@pytest.fixture
def table(joining):
    """A fresh MergeTree table in the joining server, merges stopped: one part per insert stays one."""
    client = joining.client()
    client.command("DROP DATABASE IF EXISTS joined SYNC")
    client.command("CREATE DATABASE joined")

    def create(name: str, columns: str) -> None:
        client.command(f"CREATE TABLE joined.{name} ({columns}) ENGINE = MergeTree ORDER BY tuple()")
        client.command(f"SYSTEM STOP MERGES joined.{name}")

    def counts(name: str) -> tuple[int, int]:
        parts = f"SELECT count() FROM system.parts WHERE database = 'joined' AND table = '{name}' AND active"
        return client.command(f"SELECT count() FROM joined.{name}"), client.command(parts)

    yield create, counts
    client.close()


def test_senders_that_do_not_ask_are_joined_and_one_saying_async_insert_0_is_not(joining, table):
    create, counts = table
    create("small", "n UInt32")

    def send(n: int, **settings: str) -> None:
        query = urlencode({"query": "INSERT INTO joined.small FORMAT JSONEachRow", **JOINING_WINDOW, **settings})
        answer = HTTP.request("POST", f"{joining.url}/?{query}", body=b'{"n": %d}' % n)
        assert answer.status == 200, answer.data[:300]

    together([lambda n=n: send(n) for n in range(6)])
    send(6, async_insert="0")

    assert counts("small") == (7, 2)


def job(n: int) -> Event:
    attributes = {"user_id": "u", "workflow_id": "w", "job_id": f"j-{n}", "status": "pending"}
    return Event("job", "created", attributes)


@pytest.mark.parametrize(("async_insert", "parts"), [(True, 1), (False, 4)])
def test_a_sink_joins_unless_built_not_to(joining, table, async_insert, parts):
    create, counts = table
    create("jobs_queue", "event_id String, job_id String")
    sinks = [
        ClickHouseSink(joining.url, database="joined", async_insert=async_insert, settings=JOINING_WINDOW)
        for _ in range(4)
    ]

    together([lambda sink=sink, n=n: sink.emit([job(n)]) for n, sink in enumerate(sinks)])

    assert [sink.stats.delivered for sink in sinks] == [1] * 4
    assert counts("jobs_queue") == (4, parts)
