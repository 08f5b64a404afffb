"""workflow_totals and workflow_daily of an earlier version (kind: the largest a workflow was ever
given, SimpleAggregateFunction(max, String)) are changed in place by `analytics migrate`: every
count kept, every row answering the kind it had until a later event naming a kind, or a rebuild of
its day, replaces it; a run stopped half-way goes on; a second run changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from operations.backfill import rebuild_days
from operations.dbt import run_dbt
from operations.migrate import migrate
from tests.ddl_recorder import DdlRecorder
from tests.intake import execute, post_batch, query
from tests.test_dbt_compile import run_on_cluster
from tests.test_grpc_workflow_kind import DAY1, DAY2, job_created, workflow_event

pytestmark = pytest.mark.long_file(30)  # seconds of a worker, measured: run first (tests/scheduling.py)

DAY3 = "2026-03-03"
EARLIER_TYPE = "SimpleAggregateFunction(max, String)"
# The earlier views of workflow events and of first-seen jobs (the others the run creates anew).
EARLIER_VIEWS = [
    """CREATE MATERIALIZED VIEW analytics.workflow_totals_from_workflow_events_mv TO analytics.workflow_totals AS
    SELECT user_id, workflow_id, max(kind) AS kind, minOrNull(event_time) AS first_event_at,
        maxOrNull(event_time) AS last_event_at, toInt64(count()) AS workflow_events
    FROM analytics.workflow_events GROUP BY user_id, workflow_id""",
    """CREATE MATERIALIZED VIEW analytics.workflow_daily_from_workflow_events_mv TO analytics.workflow_daily AS
    SELECT user_id, workflow_id, toDate(event_time) AS day, max(kind) AS kind, toInt64(count()) AS workflow_events
    FROM analytics.workflow_events GROUP BY user_id, workflow_id, day""",
    """CREATE MATERIALIZED VIEW analytics.workflow_totals_from_job_first_seen_mv TO analytics.workflow_totals AS
    SELECT user_id, workflow_id, max('') AS kind, toInt64(count()) AS jobs
    FROM analytics.job_first_seen GROUP BY user_id, workflow_id""",
    """CREATE MATERIALIZED VIEW analytics.workflow_daily_from_job_first_seen_mv TO analytics.workflow_daily AS
    SELECT user_id, workflow_id, toDate(first_event_time) AS day, max('') AS kind, toInt64(count()) AS jobs
    FROM analytics.job_first_seen GROUP BY user_id, workflow_id, day""",
]
TOTALS = """SELECT workflow_id, tupleElement(max(kind), 2) AS kind, sum(workflow_events) AS events, sum(jobs) AS jobs
FROM analytics.workflow_totals GROUP BY workflow_id ORDER BY workflow_id"""
DAILY = """SELECT workflow_id, toString(day) AS day, tupleElement(max(kind), 2) AS kind, sum(workflow_events) AS events,
    sum(jobs) AS jobs
FROM analytics.workflow_daily GROUP BY workflow_id, day ORDER BY workflow_id, day"""


def kind_types(server) -> dict[tuple[str, str], str]:
    rows = query(
        server,
        "SELECT table, name, type FROM system.columns WHERE database = 'analytics'"
        " AND table IN ('workflow_totals', 'workflow_daily') AND name LIKE 'kind%'",
    )
    return {(row["table"], row["name"]): row["type"] for row in rows}


def rows(server, sql: str) -> list[tuple]:
    return [
        tuple(int(value) if key in ("events", "jobs") else value for key, value in row.items())
        for row in query(server, sql)
    ]


@pytest.fixture
def earlier_install(own_analytics_db):
    """A ClickHouse of its own whose workflow aggregates and their views are an earlier version's, holding
    workflows whose kinds changed: wa from HEARTBEAT to CONTAINER, which the earlier version kept as HEARTBEAT."""
    server, settings = own_analytics_db
    feeding = query(
        server,
        "SELECT name FROM system.tables WHERE database = 'analytics' AND match(name, '^workflow_(totals|daily)_from_')",
    )
    for row in feeding:
        execute(server, f"DROP VIEW analytics.{row['name']} SYNC")
    for table in ("workflow_totals", "workflow_daily"):
        execute(server, f"ALTER TABLE analytics.{table} MODIFY COLUMN kind {EARLIER_TYPE}")
    for view in EARLIER_VIEWS:
        execute(server, view)
    batches = [
        (
            "workflows",
            [
                workflow_event("u", "wa", "created", f"{DAY1}T10:00:00.000Z", "HEARTBEAT"),
                workflow_event("u", "wb", "created", f"{DAY1}T10:00:00.000Z", "CONTAINER"),
                workflow_event("u", "wc", "created", f"{DAY1}T10:00:00.000Z", "HEARTBEAT"),
            ],
        ),
        ("workflows", [workflow_event("u", "wa", "updated", f"{DAY2}T10:00:00.000Z", "CONTAINER")]),
        ("jobs", [job_created("u", "wa", f"{DAY2}T11:00:00.000Z"), job_created("u", "wb", f"{DAY1}T11:00:00.000Z")]),
    ]
    for topic, events in batches:
        assert post_batch(server, topic, events).status == 200
    assert set(kind_types(server).values()) == {EARLIER_TYPE}
    assert rows(
        server,
        "SELECT workflow_id, max(kind) AS kind FROM analytics.workflow_totals"
        " GROUP BY workflow_id ORDER BY workflow_id",
    ) == [
        ("wa", "HEARTBEAT"),
        ("wb", "CONTAINER"),
        ("wc", "HEARTBEAT"),
    ]
    return server, settings


# What the earlier tables held, read the new way: each count, and each kind as the earlier version kept it.
KEPT_TOTALS = [("wa", "HEARTBEAT", 2, 1), ("wb", "CONTAINER", 1, 1), ("wc", "HEARTBEAT", 1, 0)]
KEPT_DAILY = [
    ("wa", DAY1, "HEARTBEAT", 1, 0),
    ("wa", DAY2, "CONTAINER", 1, 1),
    ("wb", DAY1, "CONTAINER", 1, 1),
    ("wc", DAY1, "HEARTBEAT", 1, 0),
]


def test_an_earlier_kind_is_kept_until_a_later_event_or_a_rebuild_replaces_it(earlier_install):
    server, settings = earlier_install
    upgraded = migrate(settings, capture=True)
    assert upgraded.returncode == 0, upgraded.stdout[-3000:]
    assert "changed analytics.workflow_totals.kind to (time, kind)" in upgraded.stdout
    assert "changed analytics.workflow_daily.kind to (time, kind)" in upgraded.stdout
    assert kind_types(server) == {
        (table, "kind"): "SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), String))"
        for table in ("workflow_totals", "workflow_daily")
    }
    assert rows(server, TOTALS) == KEPT_TOTALS
    assert rows(server, DAILY) == KEPT_DAILY

    # A later event naming a kind replaces the kept one, though it sorts below it; a job names none.
    assert (
        post_batch(server, "workflows", [workflow_event("u", "wb", "updated", f"{DAY3}T10:00:00.000Z", "BATCH")]).status
        == 200
    )
    assert post_batch(server, "jobs", [job_created("u", "wc", f"{DAY3}T11:00:00.000Z")]).status == 200
    assert rows(server, TOTALS) == [("wa", "HEARTBEAT", 2, 1), ("wb", "BATCH", 2, 1), ("wc", "HEARTBEAT", 1, 1)]

    # A rebuild of wa's second day gives it the kind its latest event named, there and in its totals.
    rebuild_days(settings, [dt.date.fromisoformat(DAY2)])
    assert rows(server, TOTALS) == [("wa", "CONTAINER", 2, 1), ("wb", "BATCH", 2, 1), ("wc", "HEARTBEAT", 1, 1)]
    assert rows(server, DAILY)[:2] == [("wa", DAY1, "HEARTBEAT", 1, 0), ("wa", DAY2, "CONTAINER", 1, 1)]

    again = migrate(settings, capture=True)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed analytics" not in again.stdout
    assert rows(server, TOTALS) == [("wa", "CONTAINER", 2, 1), ("wb", "BATCH", 2, 1), ("wc", "HEARTBEAT", 1, 1)]


def test_the_checks_report_a_kind_behind_the_raw_history_but_not_one_an_earlier_version_kept(earlier_install):
    server, settings = earlier_install
    upgraded = migrate(settings, capture=True)  # its tests pass: wa's kept HEARTBEAT is left to a rebuild
    assert upgraded.returncode == 0, upgraded.stdout[-3000:]
    # wb's totals as a view that missed its event would leave them: the counts right, the kind older
    execute(server, "DELETE FROM analytics.workflow_totals WHERE workflow_id = 'wb'")
    execute(
        server,
        "INSERT INTO analytics.workflow_totals (user_id, workflow_id, kind, workflow_events, jobs)"
        " VALUES ('u', 'wb', ('2026-02-01 00:00:00', 'OLDER'), 1, 1)",
    )
    check = ("test", "--select", "workflow_totals_match_raw_history")
    reported = run_dbt(settings, *check, capture=True)
    assert reported.returncode != 0 and "Got 1 result" in reported.stdout, reported.stdout[-3000:]
    # a rebuild of a day each has rows on gives both the raw history's kind
    rebuild_days(settings, [dt.date.fromisoformat(DAY1)])
    assert run_dbt(settings, *check, capture=True).returncode == 0
    assert rows(server, TOTALS) == [("wa", "CONTAINER", 2, 1), ("wb", "CONTAINER", 1, 1), ("wc", "HEARTBEAT", 1, 0)]


def test_an_upgrade_stopped_half_way_goes_on_where_it_stopped(earlier_install):
    server, settings = earlier_install
    added = (
        "ADD COLUMN kind_latest SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), String))"
        " DEFAULT (toDateTime64(0, 3, 'UTC'), kind) AFTER kind"
    )
    # workflow_totals stopped before the rename, workflow_daily after the column was added
    execute(server, f"ALTER TABLE analytics.workflow_totals {added}")
    execute(server, "ALTER TABLE analytics.workflow_totals MATERIALIZE COLUMN kind_latest SETTINGS mutations_sync = 2")
    execute(server, "ALTER TABLE analytics.workflow_totals MODIFY COLUMN kind_latest REMOVE DEFAULT")
    execute(server, "ALTER TABLE analytics.workflow_totals DROP COLUMN kind")
    execute(server, f"ALTER TABLE analytics.workflow_daily {added}")
    for view in ("workflow_totals_from_workflow_events_mv", "workflow_totals_from_job_first_seen_mv"):
        execute(server, f"DROP VIEW analytics.{view} SYNC")  # they wrote the column dropped
    upgraded = migrate(settings, capture=True)
    assert upgraded.returncode == 0, upgraded.stdout[-3000:]
    assert set(kind_types(server)) == {("workflow_totals", "kind"), ("workflow_daily", "kind")}
    assert rows(server, TOTALS) == KEPT_TOTALS
    assert rows(server, DAILY) == KEPT_DAILY


def test_a_run_that_builds_some_of_the_views_writing_the_kind_changes_nothing(earlier_install):
    server, settings = earlier_install
    half = run_dbt(settings, "run", "--select", "workflow_totals_from_workflow_events_mv", capture=True)
    assert half.returncode != 0
    assert "this one selects 1 of 10. Nothing was changed" in half.stdout, half.stdout[-3000:]
    # a run that builds none of them leaves the earlier tables and their views working
    other = run_dbt(settings, "run", "--select", "job_states", capture=True)
    assert other.returncode == 0, other.stdout[-3000:]
    assert set(kind_types(server).values()) == {EARLIER_TYPE}
    assert post_batch(server, "jobs", [job_created("u", "wc", f"{DAY3}T11:00:00.000Z")]).status == 200
    [jobs] = query(server, "SELECT sum(jobs) AS jobs FROM analytics.workflow_totals")
    assert int(jobs["jobs"]) == 3


def test_on_a_cluster_the_tables_change_on_cluster_and_their_distributed_tables_follow(clickhouse, tmp_path):
    recorder = DdlRecorder(clickhouse.url)
    database = "analytics_cluster_ddl"
    try:
        execute(clickhouse, f"DROP DATABASE IF EXISTS {database} SYNC")
        run_on_cluster(recorder, tmp_path, "run", "--threads", "1")
        for table in ("workflow_totals", "workflow_daily", "workflow_totals_all", "workflow_daily_all"):
            execute(clickhouse, f"ALTER TABLE {database}.{table} MODIFY COLUMN kind {EARLIER_TYPE}")
        built = len(recorder.statements)
        # the aggregates alone: the recorder's single node cannot re-create the views on Kafka tables
        run_on_cluster(recorder, tmp_path, "run", "--threads", "1", "--select", "tag:aggregates")
        upgrade = [
            statement for statement in recorder.statements[built:] if "kind" in statement and "alter" in statement
        ]
        types = query(
            clickhouse,
            f"SELECT DISTINCT type FROM system.columns WHERE database = '{database}' AND name = 'kind'"
            " AND match(table, '^workflow_(totals|daily)(_all)?$')",
        )
    finally:
        recorder.close()
        execute(clickhouse, f"DROP DATABASE IF EXISTS {database} SYNC")
    assert [row["type"] for row in types] == ["SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), String))"]
    for table in ("workflow_totals", "workflow_daily"):
        ours = [
            statement for statement in upgrade if f"`{database}`.`{table}` on cluster analytics_cluster" in statement
        ]
        assert [statement.split("analytics_cluster ")[1].split(" kind")[0] for statement in ours] == [
            "add column",
            "materialize column",
            "modify column",
            "drop column",
            "rename column",
        ], upgrade
        [everywhere] = [statement for statement in upgrade if f"`{database}`.`{table}_all`" in statement]
        assert f"`{database}`.`{table}_all` on cluster analytics_cluster modify column kind" in everywhere
