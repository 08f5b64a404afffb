"""A job_log_lines of the earlier version (ordered by time, under the earlier name) is renamed
job_log_events, stops `analytics migrate` with its rows untouched, and is upgraded by README's
three steps, its rows kept and not counted twice."""

from __future__ import annotations

import datetime as dt

import pytest

from core.clickhouse.backend import HttpBackend
from core.settings.composed import Settings
from operations.dbt import run_dbt
from operations.migrate import migrate
from server.logs import JobRef, LogFilter, LogQueries
from server.queries import Queries
from tests import embedded_server
from tests.intake import execute, query

pytestmark = pytest.mark.long_file(24)  # seconds of a worker, measured: run first (tests/scheduling.py)

ALL_OF_THEM = 1 << 20  # a byte budget every line of these jobs fits in
EARLIER = """CREATE TABLE analytics.job_log_lines (
    event_id String, event_time DateTime64(3, 'UTC'), user_id String, workflow_id String, job_id String,
    count UInt64, stream LowCardinality(String), sequence Nullable(UInt64), message String,
    kafka_topic LowCardinality(String), kafka_partition Nullable(UInt64), kafka_offset Nullable(UInt64),
    kafka_timestamp Nullable(DateTime64(3, 'UTC')), ingested_at DateTime64(3, 'UTC'), dedup_key FixedString(16)
) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(event_time)
ORDER BY (user_id, workflow_id, job_id, event_time, dedup_key)
TTL toDateTime(event_time) + toIntervalHour(720) SETTINGS ttl_only_drop_parts = 1"""


@pytest.fixture
def earlier_install(tmp_path):
    """A ClickHouse of its own holding job_log_lines as the earlier version made it, with rows."""
    server = embedded_server.start(tmp_path / "data")
    execute(server, "CREATE DATABASE analytics")
    execute(server, EARLIER)
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).strftime("%Y-%m-%d")
    execute(
        server,
        f"""INSERT INTO analytics.job_log_lines (event_id, event_time, user_id, workflow_id, job_id, count, stream,
                                                 sequence, message, dedup_key)
            VALUES ('e2', '{day} 10:00:02', 'u', 'w', 'j', 1, 'stdout', 2, 'second', sipHash128('job_logs', 'e2')),
                   ('e1', '{day} 10:00:03', 'u', 'w', 'j', 1, 'stderr', 1, 'first', sipHash128('job_logs', 'e1')),
                   ('e0', '{day} 10:00:01', 'u', 'w', 'j', 25, '', NULL, '', sipHash128('job_logs', 'e0')),
                   ('e3', '{day} 11:00:00', 'u', 'w', 'k', 1, 'stdout', 0, '', sipHash128('job_logs', 'e3'))""",
    )
    # e1 stored again by a later insert (a redelivery the earlier version kept in a part not merged yet)
    execute(
        server,
        f"""INSERT INTO analytics.job_log_lines (event_id, event_time, user_id, workflow_id, job_id, count, stream,
                                                 sequence, message, dedup_key)
            VALUES ('e1', '{day} 10:00:03', 'u', 'w', 'j', 1, 'stderr', 1, 'first', sipHash128('job_logs', 'e1'))""",
    )
    yield server, Settings(clickhouse_http_port=server.port, data_dir=tmp_path / "state")
    server.stop()


def test_an_earlier_job_log_lines_stops_the_migration_then_is_upgraded_by_the_readmes_steps(earlier_install):
    server, settings = earlier_install
    refused = migrate(settings, capture=True)
    assert refused.returncode != 0
    assert "was created by an earlier version" in refused.stdout
    assert "RENAME TABLE analytics.job_log_events TO analytics.job_log_events_v1" in refused.stdout
    [columns] = query(server, "SELECT count() AS n FROM system.columns WHERE table = 'job_log_events'")
    # untouched: its rows as they were, the repeated one included
    assert (int(columns["n"]), int(query(server, "SELECT count() AS n FROM analytics.job_log_events")[0]["n"])) == (
        15,
        5,
    )

    execute(server, "RENAME TABLE analytics.job_log_events TO analytics.job_log_events_v1")
    built = migrate(settings, capture=True)
    assert built.returncode == 0, built.stdout[-3000:]
    adopted = run_dbt(settings, "run-operation", "adopt_job_log_events_v1", capture=True)
    assert adopted.returncode == 0, adopted.stdout[-3000:]
    assert "adopted 4 rows" in adopted.stdout

    backend = HttpBackend(server.url)
    try:
        logs = LogQueries(Queries(backend))
        job = JobRef("u", "w", "j")
        page, _ = logs.sized_page(job, LogFilter(), False, None, 10, ALL_OF_THEM, 10)
        assert [(row.sequence, row.message, row.stream) for row in page] == [
            (1, "first", "stderr"),
            (2, "second", "stdout"),
        ]
        state = logs.log_state(job, 10)
        assert (state.counted_lines, state.stored_lines, state.lines_expired) == (2, 2, False)
        # a line with a sequence but no text was a line; a count-only event was not
        other, _ = logs.sized_page(JobRef("u", "w", "k"), LogFilter(), False, None, 10, ALL_OF_THEM, 10)
        assert [row.sequence for row in other] == [0]
    finally:
        backend.close()
    [totals] = query(server, "SELECT sum(entries) AS entries FROM analytics.job_log_totals")
    assert int(totals["entries"]) == 28
    # the views on job_log_events did not see the adopted rows: the counters already held them
    assert query(server, "SELECT count() AS n FROM analytics.workflow_totals")[0]["n"] in (0, "0")

    again = run_dbt(settings, "run-operation", "adopt_job_log_events_v1", capture=True)
    assert again.returncode != 0
    assert "there is nothing to adopt" in again.stdout
    assert int(query(server, "SELECT count() AS n FROM analytics.job_log_events")[0]["n"]) == 4
    # the earlier table is kept as it was, the repeated row with it
    assert int(query(server, "SELECT count() AS n FROM analytics.job_log_events_v1_adopted")[0]["n"]) == 5
