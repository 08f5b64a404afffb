"""Retention of raw log lines, proven by a merge: lines past their TTL go through OPTIMIZE ... FINAL,
unless audit mode is on, which keeps every line. The counts stay either way."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest

from operations.backfill import rebuild_days
from operations.dbt import dbt_vars, run_dbt
from tests import datasets
from tests.checks import assert_matches
from tests.intake import deliver, execute, query
from tests.log_datasets import JobLog, log_event

pytestmark = pytest.mark.long_file(220)  # seconds of a worker, measured: run first (tests/scheduling.py)


def apply_retention(server, audit_mode: bool | None = None, hours: int | None = None) -> str:
    """What `analytics migrate` does to job_log_events for the settings (its post-hook, on the live
    table); returns dbt's output. Neither given: the retention in force stays."""
    given = {"audit_mode": audit_mode, "log_retention_hours": hours}
    given = {name: value for name, value in given.items() if value is not None}
    settings = server.settings(**given)
    # Other vars parse the project into a target of their own, keeping the session's parse (the default vars).
    target = None
    if given:
        target = server.data_dir.parent / "state" / "dbt" / ("target-" + "-".join(f"{k}{v}" for k, v in given.items()))
    result = run_dbt(settings, "run", "--select", "job_log_events", capture=True, target_path=target)
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def stored_lines(server, dataset) -> int:
    sql = f"SELECT count() AS n FROM analytics.job_log_events WHERE startsWith(user_id, '{dataset.prefix}')"
    return int(query(server, sql)[0]["n"])


def test_audit_mode_keeps_lines_past_their_ttl_through_a_final_merge_and_retention_drops_them(analytics_db):
    kept = datasets.generate(seed=61, users=2, days_ago=120, duplicate_rate=0)  # far past the 720 hours
    dropped = datasets.generate(seed=62, users=2, days_ago=120, duplicate_rate=0)
    try:
        apply_retention(analytics_db, audit_mode=True)
        deliver(analytics_db, kept.messages)
        delivered = stored_lines(analytics_db, kept)
        execute(analytics_db, "OPTIMIZE TABLE analytics.job_log_events FINAL")
        assert stored_lines(analytics_db, kept) == delivered > 0
        # A run without the setting (`analytics up` after a restart that forgot ANALYTICS_AUDIT_MODE)
        # keeps audit mode: ending it would remove these lines for good.
        apply_retention(analytics_db)
        execute(analytics_db, "OPTIMIZE TABLE analytics.job_log_events FINAL")
        assert stored_lines(analytics_db, kept) == delivered
        assert query(analytics_db, "SELECT audit_mode FROM analytics.storage_log_retention") == [{"audit_mode": True}]
    finally:
        said = apply_retention(analytics_db, audit_mode=False)  # only said: back to the 720 hours, and said so
    assert "log retention: audit mode gives way to 720 hours; lines logged longer ago than that will be removed" in said
    execute(analytics_db, "SYSTEM STOP TTL MERGES analytics.job_log_events")  # the merge below must do it
    try:
        deliver(analytics_db, dropped.messages)
        assert stored_lines(analytics_db, dropped) > 0
    finally:
        execute(analytics_db, "SYSTEM START TTL MERGES analytics.job_log_events")
    execute(analytics_db, "OPTIMIZE TABLE analytics.job_log_events FINAL")
    assert stored_lines(analytics_db, dropped) == 0
    assert_matches(analytics_db, kept)  # counts never expire
    assert_matches(analytics_db, dropped)


def a_job_whose_first_lines_expired(server, name: str) -> tuple[JobLog, dt.datetime]:
    """A job of its own that logged three lines 40 days ago (past the 720 hours, gone by a merge)
    and two an hour ago; and that hour."""
    prefix = f"{name}{uuid.uuid4().hex[:6]}"
    job = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-j")
    now = dt.datetime.now(dt.UTC)
    recent = now - dt.timedelta(hours=1)
    old = [log_event(job, f"{prefix}-old-{n}", now - dt.timedelta(days=40), message=f"old {n}") for n in range(3)]
    new = [log_event(job, f"{prefix}-new-{n}", recent, message=f"new {n}") for n in range(2)]
    deliver(server, {"job_logs": old + new})
    execute(server, "OPTIMIZE TABLE analytics.job_log_events FINAL")  # the old day's lines go
    return job, recent


def test_a_rebuild_keeps_the_log_counts_of_a_job_whose_first_lines_expired(analytics_db):
    # One job logged 40 days ago (past the 720 hours) and again an hour ago: the old day's lines go,
    # and a rebuild of today cannot know them from raw history, so the job's counts must stand.
    job, recent = a_job_whose_first_lines_expired(analytics_db, "part")
    totals = f"""SELECT sum(lines) AS lines, sum(entries) AS entries FROM analytics.job_log_totals
                 WHERE user_id = '{job.user_id}'"""
    raw = f"SELECT count() AS n FROM analytics.job_log_events FINAL WHERE user_id = '{job.user_id}'"
    assert int(query(analytics_db, raw)[0]["n"]) == 2
    settings = analytics_db.settings()
    summary = rebuild_days(settings, [recent.date()])
    # This job's counts stand (the rebuild may correct other tests' jobs of the day on this shared server).
    # Whether its lines may have expired follows every retention this server had (other tests change it).
    retention = query(analytics_db, "SELECT * FROM analytics.log_retention_history ORDER BY applied_at")
    assert query(analytics_db, totals) == [{"lines": 5, "entries": 5}], (retention, summary.output[-2000:])


def test_a_rebuild_raises_the_log_counts_of_a_job_whose_first_lines_expired_to_what_raw_history_holds(analytics_db):
    """Counted below the lines raw history still holds, a job whose first lines expired was reported
    by the reconciliation test (whatever the job's age) and never corrected by a rebuild."""
    job, recent = a_job_whose_first_lines_expired(analytics_db, "low")
    # A block lost on the way to the totals: the job counted 1, where raw history holds 2 of its 5.
    execute(
        analytics_db,
        f"""INSERT INTO analytics.job_log_totals (user_id, workflow_id, job_id, lines, entries, first_event_at)
            VALUES ('{job.user_id}', '{job.workflow_id}', '{job.job_id}', {2**64 - 4}, {2**64 - 4}, now64(3))""",
    )
    totals = f"""SELECT sum(lines) AS lines, sum(entries) AS entries FROM analytics.job_log_totals
                 WHERE user_id = '{job.user_id}'"""
    assert query(analytics_db, totals) == [{"lines": 1, "entries": 1}]
    summary = rebuild_days(analytics_db.settings(), [recent.date()])
    retention = query(analytics_db, "SELECT * FROM analytics.log_retention_history ORDER BY applied_at")
    assert query(analytics_db, totals) == [{"lines": 2, "entries": 2}], (retention, summary.output[-2000:])


def test_no_line_expires_at_once_because_its_end_is_past_2106(analytics_db):
    # A TTL is a DateTime, which wraps around after 2106-02-07: a line kept for a million hours, or
    # logged in 2140, used to get an end in the past and go with the next merge.
    prefix = f"wrap{uuid.uuid4().hex[:6]}"
    job = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-j")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)  # past the 720 hours, within a million
    kept = [log_event(job, f"{prefix}-old-{n}", old, message=f"{n}") for n in range(3)]
    late = [
        log_event(job, f"{prefix}-late-{n}", dt.datetime(2140, 1, 1, tzinfo=dt.UTC), message=f"{n}") for n in range(2)
    ]

    def stored(kind: str) -> int:
        sql = f"SELECT count() AS n FROM analytics.job_log_events WHERE event_id LIKE '{prefix}-{kind}-%'"
        return int(query(analytics_db, sql)[0]["n"])

    try:
        apply_retention(analytics_db, hours=1_000_000)
        deliver(analytics_db, {"job_logs": kept})
        execute(analytics_db, "OPTIMIZE TABLE analytics.job_log_events FINAL")
        assert stored("old") == 3
    finally:
        apply_retention(analytics_db, hours=720)
    deliver(analytics_db, {"job_logs": late})  # under the 720 hours
    execute(analytics_db, "OPTIMIZE TABLE analytics.job_log_events FINAL")
    assert stored("late") == 2


def job_log_events_ddl(server) -> str:
    sql = "SELECT create_table_query AS ddl FROM system.tables WHERE database = 'analytics' AND name = 'job_log_events'"
    return query(server, sql)[0]["ddl"]


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        # read as 0 hours, it set a TTL that removed every line at the next merge
        (
            {"log_retention_hours": "72h"},
            'var log_retention_hours must be a whole number of hours from 1 to 1000000, not "72h"',
        ),
        # a non-empty string was true: audit mode on
        ({"audit_mode": "no"}, 'var audit_mode must be true or false, not "no"'),
        # both: audit mode won, and the hours were ignored without a word
        (
            {"audit_mode": True, "log_retention_hours": 72},
            "vars audit_mode true and log_retention_hours 72 contradict each other: give one of them",
        ),
    ],
)
def test_a_retention_var_given_to_dbt_by_hand_is_checked_as_the_settings_are(analytics_db, tmp_path, given, refusal):
    settings = analytics_db.settings()
    before = job_log_events_ddl(analytics_db)
    variables = json.dumps({**dbt_vars(settings), **given})
    result = run_dbt(
        settings, "run", "--select", "job_log_events", "--vars", variables, capture=True, target_path=tmp_path / "t"
    )
    assert result.returncode != 0
    assert refusal in result.stdout
    assert job_log_events_ddl(analytics_db) == before


@pytest.mark.parametrize("between", [None, {"audit_mode": True}], ids=["at-once", "through-audit-mode"])
def test_a_longer_retention_keeps_the_lines_the_shorter_one_still_kept(own_analytics_db, between):
    """Lines within a 1-hour retention when it gave way to 720 hours (at once, or after a spell of
    audit mode) must stay. Their parts kept the TTL the 1 hour gave them (the ALTER did not
    recompute it), and the next merge dropped them whole a minute later."""
    server, settings = own_analytics_db
    job = JobLog("long-u", "long-w", "long-j")
    logged = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=59)
    run = run_dbt(
        settings.model_copy(update={"log_retention_hours": 1}), "run", "--select", "job_log_events", capture=True
    )
    assert run.returncode == 0, run.stdout[-3000:]
    deliver(server, {"job_logs": [log_event(job, f"long-{n}", logged, message=f"{n}") for n in range(2)]})
    deliver(server, {"job_logs": [log_event(job, f"long-{n}", logged, message=f"{n}") for n in range(2, 4)]})
    if between:
        run = run_dbt(settings.model_copy(update=between), "run", "--select", "job_log_events", capture=True)
        assert run.returncode == 0, run.stdout[-3000:]
    run = run_dbt(
        settings.model_copy(update={"log_retention_hours": 720}), "run", "--select", "job_log_events", capture=True
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert dt.datetime.now(dt.UTC) < logged + dt.timedelta(hours=1), "too slow: the lines left the 1 hour first"
    time.sleep(max(0.0, (logged + dt.timedelta(hours=1, seconds=5) - dt.datetime.now(dt.UTC)).total_seconds()))
    execute(server, "OPTIMIZE TABLE analytics.job_log_events FINAL")
    [row] = query(server, "SELECT count() AS n FROM analytics.job_log_events WHERE user_id = 'long-u'")
    assert int(row["n"]) == 4
