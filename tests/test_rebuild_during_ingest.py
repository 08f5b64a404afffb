"""A rebuild of days that events keep arriving for loses none of them.

The rebuild is held right after it has read the raw history of its days, for as long as the
table analytics.rebuild_hold exists (ANALYTICS_FAULT_REBUILD_HOLD, dbt_project/macros/rebuild.sql);
a second data set of the same days arrives in that window before the test drops the table.
Corrections taken from that earlier read subtracted the new events again: their days' counters
were zeroed and deleted, their percentiles dropped, and every rebuild run during ingest did the
same to the newest events.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from operations.backfill import rebuild_days
from tests import datasets
from tests.checks import assert_matches, workflow_numbers
from tests.intake import deliver, execute, query

pytestmark = pytest.mark.long_file(15)  # seconds of a worker, measured: run first (tests/scheduling.py)

HOLD_SECONDS = 240  # at most: the test releases the hold once its events are in


def held(server) -> bool:
    rows = query(
        server,
        "SELECT count() AS n FROM system.processes "
        "WHERE query LIKE '%rebuild_held%' AND query NOT LIKE '%system.processes%'",
    )
    return int(rows[0]["n"]) > 0


def daily_numbers(server, prefix: str) -> dict:
    rows = query(
        server,
        f"""SELECT user_id, workflow_id, sum(jobs) AS jobs, sum(joblogs) AS joblogs,
                   sum(job_execution_seconds) AS seconds
            FROM analytics.workflow_daily WHERE startsWith(user_id, '{prefix}')
            GROUP BY user_id, workflow_id HAVING jobs != 0 OR joblogs != 0 OR seconds != 0""",
    )
    return {(row["user_id"], row["workflow_id"]): (row["jobs"], row["joblogs"], row["seconds"]) for row in rows}


def digest_keys(server, prefix: str) -> int:
    rows = query(
        server,
        f"""SELECT count() AS n FROM (SELECT DISTINCT user_id, workflow_id, day FROM analytics.job_duration_daily
            WHERE startsWith(user_id, '{prefix}'))""",
    )
    return int(rows[0]["n"])


def test_events_arriving_while_their_days_are_rebuilt_are_kept(analytics_db, monkeypatch):
    before = datasets.generate(seed=71, users=1, days_ago=4, span_days=2, duplicate_rate=0)
    during = datasets.generate(seed=72, users=1, days_ago=4, span_days=2, duplicate_rate=0)
    deliver(analytics_db, before.messages)
    days = {
        dt.date.fromisoformat(message["event_time"][:10])
        for dataset in (before, during)
        for batch in dataset.messages.values()
        for message in batch
        if "event_time" in message
    }
    days.add(dt.datetime.now(dt.UTC).date())  # the scheduler's events count on the day they arrive

    monkeypatch.setenv("ANALYTICS_FAULT_REBUILD_HOLD", str(HOLD_SECONDS))
    execute(analytics_db, "CREATE TABLE analytics.rebuild_hold (x UInt8) ENGINE = Memory")
    outcome: dict = {}

    def rebuild() -> None:
        try:
            outcome["summary"] = rebuild_days(analytics_db.settings(), sorted(days))
        except BaseException as error:  # noqa: BLE001 - reported below
            outcome["error"] = error

    rebuilding = threading.Thread(target=rebuild)
    rebuilding.start()
    try:
        deadline = time.monotonic() + 120
        while not held(analytics_db):
            assert rebuilding.is_alive() and time.monotonic() < deadline, f"the rebuild never held: {outcome}"
            time.sleep(0.05)
        # Its statements carry the lock's log_comment (profiles.yml), by which the lock finds them.
        comments = "SELECT Settings['log_comment'] AS c FROM system.processes WHERE query LIKE '%rebuild_held%'"
        while not (found := query(analytics_db, comments + " AND query NOT LIKE '%system.processes%'")):
            assert time.monotonic() < deadline
        assert found[0]["c"].startswith("analytics rebuild "), found
        deliver(analytics_db, during.messages)
        digests = digest_keys(analytics_db, during.prefix)
        assert rebuilding.is_alive(), f"the rebuild did not wait for the events: {outcome}"
    finally:
        execute(analytics_db, "DROP TABLE IF EXISTS analytics.rebuild_hold")
    rebuilding.join(300)
    assert "error" not in outcome, outcome.get("error")

    for dataset in (before, during):
        assert_matches(analytics_db, dataset)
        totals = workflow_numbers(analytics_db, dataset.prefix)
        assert daily_numbers(analytics_db, dataset.prefix) == {
            key: (row["jobs"], row["joblogs"], row["seconds"]) for key, row in totals.items()
        }
    assert digests > 0
    assert digest_keys(analytics_db, during.prefix) == digests
