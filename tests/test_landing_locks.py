"""The front's lock per topic (embedded/landing_locks.py): which inserts take it, and that it
serializes one topic's inserts and no others. The race it prevents is tests/test_exact_after_races.py."""

import asyncio

import pytest

from embedded.landing_locks import LandingLocks, landing_topic
from embedded.sqltext import insert_target


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
