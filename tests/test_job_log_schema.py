"""job_log_events serves the service's reads as designed, and its dbt test catches wrong totals.

ClickHouse's EXPLAIN on the very statements the service sends shows how they read: a page of one
job in the table's order from its own primary-key range, a text search skipping the granules
the n-gram index rules out. A change of order or index that loses this fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.clickhouse.backend import HttpBackend
from operations.dbt import run_dbt
from server.logs import JobRef, LogFilter, LogQueries
from server.pagination import PAGE_BYTES, LogPosition
from tests import log_datasets
from tests.intake import deliver, execute, query

JOB_LINES = 100_000
OTHER_LINES = 200_000


class Recorder:
    """Stands in for Queries: keeps the statement instead of running it."""

    def rows(self, name, sql, params, timeout):
        self.sql, self.params = sql, params
        return []


@pytest.fixture(scope="module")
def big_job(analytics_db) -> JobRef:
    """One job of 100,000 lines among other jobs' lines; one of its lines has a word no other has."""
    prefix = log_datasets.generate_logs(seed=95, users=0).prefix
    job = JobRef(f"{prefix}-u", f"{prefix}-w", f"{prefix}-big")
    execute(
        analytics_db,
        f"""INSERT INTO analytics.job_logs_queue (event_id, event_time, event_type, event_name, user_id, workflow_id,
                                                  job_id, count, stream, sequence, message)
            SELECT concat('{prefix}-', toString(number)),
                   -- the queue takes values as a JSON message holds them: ISO 8601 times, Int64 numbers
                   concat(replaceOne(toString(now64(3, 'UTC') - INTERVAL 1 HOUR + toIntervalMillisecond(number)),
                                     ' ', 'T'), 'Z'),
                   'job_log', 'created', '{job.user_id}', '{job.workflow_id}',
                   if(number < {JOB_LINES}, '{job.job_id}', concat('{prefix}-other-', toString(number % 7))),
                   toInt64(1), if(number % 5 = 0, 'stderr', 'stdout'), toInt64(number % {JOB_LINES}),
                   if(number = 77777, 'worker-3 hit the Qwertzuiop wall',
                      concat('request ', hex(cityHash64(number)), ' served in ', toString(number % 997), ' ms'))
            FROM numbers({JOB_LINES + OTHER_LINES})""",
    )
    execute(analytics_db, "OPTIMIZE TABLE analytics.job_log_events FINAL")
    return job


def plan(analytics_db, kind: str, statement: Recorder) -> str:
    backend = HttpBackend(analytics_db.url)
    try:
        return "\n".join(row[0] for row in backend.rows(f"EXPLAIN {kind} {statement.sql}", statement.params, 30))
    finally:
        backend.close()


def granules(explained: str) -> list[tuple[int, int]]:
    """(selected, of) for each index step of EXPLAIN indexes = 1, in order."""
    return [(int(a), int(b)) for a, b in re.findall(r"Granules: (\d+)/(\d+)", explained)]


@pytest.mark.parametrize("descending", [False, True])
def test_a_page_reads_the_jobs_own_range_in_the_tables_order(analytics_db, big_job, descending):
    recorder = Recorder()
    LogQueries(recorder).sized_page(big_job, LogFilter(), descending, None, 501, PAGE_BYTES, 10)  # as ListJobLogs asks
    assert ("Read type: InReverseOrder" if descending else "Read type: InOrder") in plan(
        analytics_db, "actions = 1", recorder
    )
    # The job's range, and a granule or so of each part of other tests' users around it (the server
    # is shared, and its merges may not have caught up): what the first page's key selects.
    [*_, (whole, _)] = granules(plan(analytics_db, "indexes = 1", recorder))
    LogQueries(recorder).sized_page(
        big_job, LogFilter(), descending, LogPosition(50_000, 0, "0" * 32), 501, PAGE_BYTES, 10
    )
    [*_, (selected, total)] = granules(plan(analytics_db, "indexes = 1", recorder))
    # Half the job's granules fewer: the page resumes where it left off, not at the job's start.
    assert selected <= whole - (JOB_LINES // 8192) // 2 + 2 and selected < total


def test_a_search_reads_only_the_granules_the_ngram_index_keeps(analytics_db, big_job):
    recorder = Recorder()
    LogQueries(recorder).sized_page(big_job, LogFilter(contains="QWERTZUIOP wall"), False, None, 501, PAGE_BYTES, 10)
    explained = plan(analytics_db, "indexes = 1", recorder)
    assert "message_ngrams" in explained
    (_, total), *_, (by_key, _), (by_ngrams, _) = granules(explained)
    assert by_key >= JOB_LINES // 8192 and by_ngrams == 1
    backend = HttpBackend(analytics_db.url)
    try:
        [[message]] = [row[4:5] for row in backend.rows(recorder.sql, recorder.params, 30)]
    finally:
        backend.close()
    assert message == "worker-3 hit the Qwertzuiop wall"


def failing_rows(analytics_db, target: Path) -> list[dict]:
    """The rows the dbt test found, read again with the SQL dbt compiled for it."""
    [compiled] = (target / "compiled").rglob("job_log_totals_match_raw_history.sql")
    return query(analytics_db, compiled.read_text())


def test_the_job_log_totals_test_catches_a_wrong_count(analytics_db, big_job, tmp_path):
    settings = analytics_db.settings()
    logs = log_datasets.generate_logs(seed=96, users=1, jobs_per_user=2, lines=(5, 30))
    deliver(analytics_db, logs.messages)
    select = ("--select", "job_log_totals_match_raw_history")
    passing = run_dbt(settings, "test", *select, capture=True, target_path=tmp_path / "target")
    # dbt names the failing test and the error; the rows say which job and by how much
    assert passing.returncode == 0, (passing.stdout[-4000:], failing_rows(analytics_db, tmp_path / "target"))
    job = logs.jobs[0]
    corrupt = f"""INSERT INTO analytics.job_log_totals (user_id, workflow_id, job_id, lines, first_event_at)
                  VALUES ('{job.user_id}', '{job.workflow_id}', '{job.job_id}', {{n}}, now64(3))"""
    execute(analytics_db, corrupt.format(n=1))  # one line counted that never landed
    try:
        broken = run_dbt(settings, "test", *select, capture=True)
        assert broken.returncode != 0
        assert "job_log_totals_match_raw_history" in broken.stdout
    finally:
        execute(analytics_db, corrupt.format(n=2**64 - 1))  # the sum wraps back by one
    [row] = query(
        analytics_db,
        f"SELECT sum(lines) AS n FROM analytics.job_log_totals WHERE job_id = '{job.job_id}'",
    )
    assert int(row["n"]) == len(job.lines)  # undone, as before the broken run (the first run passed on it)
