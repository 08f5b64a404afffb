"""The front's lock per topic (embedded/landing_locks.py): which inserts take it, and that it
serializes one topic's inserts and no others. The race it prevents is tests/test_exact_after_races.py."""

import asyncio
import contextlib
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from embedded.landing_locks import LandingLocks, landing_topic
from embedded.sqltext import insert_target
from tests import datasets
from tests.checks import assert_matches
from tests.grpc_server import wait_until as wait_for
from tests.intake import deliver, insert_statement, query


@pytest.mark.parametrize(
    ("statement", "target"),
    [
        ("INSERT INTO analytics.jobs_queue FORMAT JSONEachRow", ("analytics", "jobs_queue")),
        ('insert into table `analytics`."job_logs_messages" FORMAT RowBinary', ("analytics", "job_logs_messages")),
        ("INSERT INTO workflows_queue (event_id, event_time) VALUES", (None, "workflows_queue")),
        (
            "INSERT /* a comment */ INTO analytics . telemetry_checked SELECT * FROM x",
            ("analytics", "telemetry_checked"),
        ),
        ("INSERT INTO FUNCTION file('x.tsv') SELECT 1", None),
        ("SELECT * FROM analytics.jobs_queue", None),
        ("INSERT INTO analytics.", None),
        ("INSERT INTO 'unclosed", None),
    ],
)
def test_the_table_an_insert_writes_is_read_from_its_text(statement, target):
    assert insert_target(statement) == target


def test_only_inserts_into_a_topics_landing_tables_have_a_topic():
    assert landing_topic("INSERT INTO analytics.jobs_messages FORMAT RowBinary") == "jobs"
    assert landing_topic("INSERT INTO other.jobs_queue FORMAT JSONEachRow") == "jobs"  # any database
    assert landing_topic("INSERT INTO analytics.job_events FORMAT JSONEachRow") is None
    assert landing_topic("INSERT INTO analytics.dead_letters FORMAT JSONEachRow") is None


def test_a_topics_inserts_wait_for_each_other_and_other_topics_do_not(monkeypatch):
    monkeypatch.delenv("ANALYTICS_FAULT_CONCURRENT_LANDING", raising=False)
    events: list[str] = []

    async def insert(locks: LandingLocks, table: str, name: str) -> None:
        async with locks.held(f"INSERT INTO analytics.{table} FORMAT JSONEachRow".encode()):
            events.append(f"{name} in")
            await asyncio.sleep(0.05)
            events.append(f"{name} out")

    async def main() -> None:
        locks = LandingLocks()
        await asyncio.gather(
            insert(locks, "jobs_queue", "a"), insert(locks, "jobs_messages", "b"), insert(locks, "workflows_queue", "c")
        )

    asyncio.run(main())
    assert events.index("a out") < events.index("b in")  # one topic: one after the other
    assert events.index("c in") < events.index("a out")  # another topic: beside them


def test_a_sender_still_sending_a_large_body_holds_up_no_other_insert_of_its_topic(analytics_db):
    """A large body into a landing table comes slowly (a far or slow client); meanwhile another
    sender's events of the same topic go in and are answered. The topic's lock was held for as long
    as the body took to arrive: every insert of the topic, the bridge's too, waited behind it."""
    slow = datasets.generate(seed=91, users=6, workflows_per_user=10, jobs_per_workflow=80, duplicate_rate=0)
    quick = datasets.generate(seed=92, users=1, workflows_per_user=1, jobs_per_workflow=2)
    deliver(analytics_db, {topic: batch for topic, batch in slow.messages.items() if topic != "jobs"})
    body = "\n".join(json.dumps(message) for message in slow.messages["jobs"]).encode()
    cut = body.index(b"\n", (1 << 20) + (1 << 18)) + 1  # past what the front reads before it inserts
    assert cut < len(body)
    host, port = analytics_db.url.removeprefix("http://").split(":")
    settings = {"query": insert_statement("jobs"), "http_receive_timeout": "300"}
    sender = socket.create_connection((host, int(port)))
    try:
        sender.sendall(
            f"POST /?{urlencode(settings)} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:cut]
        )
        # The large body has had time to start its insert, which streamed it into chDB under the
        # topic's lock. The wait is bounded and not required: the insert below must be answered
        # whatever the order.
        inserting = "SELECT count() AS n FROM system.processes WHERE query LIKE '%.fifo%' AND query_kind = 'Insert'"
        with contextlib.suppress(AssertionError):
            wait_for(lambda: query(analytics_db, inserting) != [{"n": 0}], "an insert reading a FIFO", timeout=3)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(deliver, analytics_db, quick.messages).result(120)  # while the large body is coming
        sender.sendall(body[cut:])
        sender.settimeout(120)
        assert sender.recv(1 << 16).startswith(b"HTTP/1.1 200")
    finally:
        sender.close()
    assert_matches(analytics_db, quick)
    assert_matches(analytics_db, slow)
