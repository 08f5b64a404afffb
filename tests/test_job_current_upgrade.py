"""job_current of an earlier version (argMax states over a (time, stage) tuple) is rebuilt from
job_events by `analytics migrate`: the same states, the earlier table kept aside, the view feeding
the new one, and a second run changing nothing."""

from __future__ import annotations

import pytest

from operations.dbt import run_dbt
from operations.migrate import migrate
from tests.intake import execute, post_batch, query

pytestmark = pytest.mark.long_file(20)  # seconds of a worker, measured: run first (tests/scheduling.py)

EARLIER_TABLE = """CREATE TABLE analytics.job_current (
    user_id String, workflow_id String, job_id String,
    last_event AggregateFunction(argMax, LowCardinality(String), Tuple(DateTime64(3, 'UTC'), UInt8)),
    last_status AggregateFunction(argMax, LowCardinality(String), Tuple(DateTime64(3, 'UTC'), UInt8)),
    first_event_time SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    last_event_time SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    scheduled_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    started_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    completed_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    events SimpleAggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree ORDER BY (user_id, workflow_id, job_id)"""

EARLIER_VIEW = """CREATE MATERIALIZED VIEW analytics.job_current_from_job_events_mv TO analytics.job_current AS
WITH staged AS (
    SELECT *, tuple(event_time, transform(event_name, ['created', 'started', 'completed', 'failed', 'cancelled'],
                                          [1, 2, 3, 3, 3], 0)) AS position
    FROM analytics.job_events
)
SELECT user_id, workflow_id, job_id, argMaxState(event_name, position) AS last_event,
       argMaxState(status, if(status != '', position, tuple(toDateTime64(0, 3, 'UTC'), toUInt8(0)))) AS last_status,
       min(event_time) AS first_event_time, max(event_time) AS last_event_time, max(scheduled_at) AS scheduled_at,
       max(started_at) AS started_at, max(completed_at) AS completed_at, count() AS events
FROM staged GROUP BY user_id, workflow_id, job_id"""

STATES = "SELECT * FROM analytics.job_states ORDER BY job_id"


def job_event(job: str, n: int, name: str, at: str, status: str) -> dict:
    event = {
        "event_id": f"{job}-{n}",
        "event_time": at,
        "event_type": "job",
        "event_name": name,
        "user_id": "u",
        "workflow_id": "w",
        "job_id": job,
        "status": status,
    }
    if name != "created":
        event["started_at"] = "2026-11-20T08:00:00Z"
    if name in ("completed", "failed", "cancelled"):
        event["completed_at"] = at
    return event


@pytest.fixture
def earlier_install(own_analytics_db):
    """A ClickHouse of its own on the current schema but for an earlier job_current, holding jobs."""
    server, settings = own_analytics_db
    execute(server, "DROP VIEW analytics.job_current_from_job_events_mv")
    execute(server, "DROP TABLE analytics.job_current")
    execute(server, EARLIER_TABLE)
    execute(server, EARLIER_VIEW)
    # out of order, across inserts; j2's two events share a timestamp: the later stage wins
    batches = [
        [job_event("j1", 3, "completed", "2026-11-20T10:10:00Z", "COMPLETED")],
        [
            job_event("j1", 1, "created", "2026-11-20T09:59:00Z", "pending"),
            job_event("j2", 1, "created", "2026-11-20T09:00:00Z", "queued"),
        ],
        [
            job_event("j1", 2, "started", "2026-11-20T10:00:00Z", "RUNNING"),
            job_event("j2", 2, "started", "2026-11-20T09:00:00Z", "running"),
        ],
    ]
    for batch in batches:
        assert post_batch(server, "jobs", batch).status == 200
    return server, settings


def test_an_earlier_job_current_is_rebuilt_from_job_events_with_the_same_states(earlier_install):
    server, settings = earlier_install
    before = query(server, STATES)
    assert [(row["job_id"], row["state"], row["status"], int(row["events"])) for row in before] == [
        ("j1", "completed", "completed", 3),
        ("j2", "started", "running", 2),
    ]

    upgraded = migrate(settings, capture=True)
    assert upgraded.returncode == 0, upgraded.stdout[-3000:]
    assert "renamed analytics.job_current (an earlier version) to job_current_v1" in upgraded.stdout
    assert "rebuilt analytics.job_current from job_events (2 rows)" in upgraded.stdout
    [state_type] = query(server, "SELECT type FROM system.columns WHERE table = 'job_current' AND name = 'last_event'")
    assert state_type["type"].endswith(", Int64)"), state_type
    assert query(server, STATES) == before
    kept = "SELECT job_id, argMaxMerge(last_event) AS state FROM analytics.job_current_v1_replaced GROUP BY job_id"
    assert sorted((row["job_id"], row["state"]) for row in query(server, kept)) == [
        ("j1", "completed"),
        ("j2", "started"),
    ]

    # the view feeds the new table: a job's later event moves its state on, an earlier one does not
    # and a millisecond later outweighs a later stage
    late = [
        job_event("j2", 3, "failed", "2026-11-20T09:30:00Z", "FAILED"),
        job_event("j1", 0, "created", "2026-11-20T09:00:00Z", "pending"),
        job_event("j3", 1, "completed", "2026-11-20T11:00:00.000Z", "COMPLETED"),
        job_event("j3", 2, "started", "2026-11-20T11:00:00.001Z", "RUNNING"),
    ]
    assert post_batch(server, "jobs", late).status == 200
    after = [(row["job_id"], row["state"], row["status"], int(row["events"])) for row in query(server, STATES)]
    assert after == [
        ("j1", "completed", "completed", 4),
        ("j2", "failed", "failed", 3),
        ("j3", "started", "running", 2),
    ]

    again = migrate(settings, capture=True)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "rebuilt" not in again.stdout
    assert [(row["job_id"], int(row["events"])) for row in query(server, STATES)] == [("j1", 4), ("j2", 3), ("j3", 2)]


def test_the_rebuild_counts_an_event_stored_twice_once(earlier_install):
    server, settings = earlier_install
    # j2's first event stored again, as two inserts racing past the first-seen gate can leave it
    execute(server, "INSERT INTO analytics.job_events SELECT * FROM analytics.job_events WHERE event_id = 'j2-1'")
    assert [int(row["events"]) for row in query(server, STATES)] == [3, 3]
    upgraded = migrate(settings, capture=True)
    assert upgraded.returncode == 0, upgraded.stdout[-3000:]
    assert [int(row["events"]) for row in query(server, STATES)] == [3, 2]


def test_an_upgrade_left_half_done_stops_the_run_and_changes_nothing(earlier_install):
    server, settings = earlier_install
    execute(server, "CREATE TABLE analytics.job_current_v1 (x UInt8) ENGINE = Memory")
    refused = migrate(settings, capture=True)
    assert refused.returncode != 0
    assert "analytics.job_current_v1 exists already" in refused.stdout
    [state_type] = query(server, "SELECT type FROM system.columns WHERE table = 'job_current' AND name = 'last_event'")
    assert "Tuple(" in state_type["type"]
    assert [int(row["events"]) for row in query(server, STATES)] == [3, 2]


def test_on_a_cluster_an_earlier_job_current_stops_the_run_and_names_the_steps(earlier_install):
    server, settings = earlier_install
    refused = migrate(settings.model_copy(update={"cluster": "analytics_cluster"}), capture=True)
    assert refused.returncode != 0
    assert "must be rebuilt from job_events on every shard; nothing was changed" in refused.stdout
    assert 'README, "Upgrading job_current"' in refused.stdout
    assert query(server, "SELECT count() AS n FROM system.tables WHERE name = 'job_current_v1'")[0]["n"] in (0, "0")
    assert [int(row["events"]) for row in query(server, STATES)] == [3, 2]


def test_a_run_that_builds_only_one_of_job_current_and_its_view_changes_nothing(earlier_install):
    server, settings = earlier_install
    half = run_dbt(settings, "run", "--select", "job_current_from_job_events_mv", capture=True)
    assert half.returncode != 0
    assert "this one selects only one of them. Nothing was changed" in half.stdout
    # a run that builds neither leaves the earlier table and its view working
    other = run_dbt(settings, "run", "--select", "job_states", capture=True)
    assert other.returncode == 0, other.stdout[-3000:]
    assert post_batch(server, "jobs", [job_event("j3", 1, "created", "2026-11-20T11:00:00Z", "queued")]).status == 200
    [state_type] = query(server, "SELECT type FROM system.columns WHERE table = 'job_current' AND name = 'last_event'")
    assert "Tuple(" in state_type["type"]
    assert [int(row["events"]) for row in query(server, STATES)] == [3, 2, 1]
