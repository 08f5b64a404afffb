"""Which log lines may have expired follows every retention applied, not only today's: lines a
shorter retention removed keep their counts through a backfill and the dbt tests once a longer one
is back (log_retention_history, storage_log_retention's lines_complete_since)."""

from __future__ import annotations

import datetime as dt

import pytest

from operations.backfill import rebuild_days
from operations.migrate import migrate
from tests.intake import deliver, execute, query
from tests.log_datasets import JobLog, log_event

pytestmark = pytest.mark.long_file(30)  # seconds of a worker, measured: run first (tests/scheduling.py)

JOBLOGS = "SELECT total_joblogs AS n FROM analytics.user_totals WHERE user_id = 'u-r'"


def test_lines_a_shorter_retention_removed_keep_their_counts_under_a_longer_one(own_analytics_db):
    server, settings = own_analytics_db
    job = JobLog("u-r", "w-r", "j-r")
    logged = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)  # past 48 hours, within 720
    deliver(server, {"job_logs": [log_event(job, f"r-{n}", logged, message=f"line {n}") for n in range(110)]})
    assert query(server, JOBLOGS) == [{"n": 110}]

    # 48 hours applied, and its TTL run: the lines go, the counts stay.
    short = migrate(settings.model_copy(update={"log_retention_hours": 48}), capture=True)
    assert short.returncode == 0, short.stdout[-3000:]
    execute(server, "ALTER TABLE analytics.job_log_events MATERIALIZE TTL SETTINGS mutations_sync = 2")
    [stored] = query(server, "SELECT count() AS n FROM analytics.job_log_events WHERE user_id = 'u-r'")
    assert int(stored["n"]) == 0

    # Back to 720 hours: the day is within it, but its lines went under the 48.
    back = migrate(settings.model_copy(update={"log_retention_hours": 720}), capture=True)
    assert back.returncode == 0, back.stdout[-3000:]  # the dbt tests take the counts as they are
    rebuild_days(settings, [logged.date()])
    assert query(server, JOBLOGS) == [{"n": 110}]
    history = query(server, "SELECT log_retention_hours AS h FROM analytics.log_retention_history ORDER BY applied_at")
    assert [row["h"] for row in history] == [720, 48, 720]
