"""The dbt schema with real events: the metrics of DESIGN.md, exact under duplicates and disorder."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from core.settings.composed import Settings
from operations.dbt import run_dbt
from tests import datasets
from tests.checks import assert_matches
from tests.intake import deliver, execute, post_batch, query

pytestmark = pytest.mark.long_file(38)  # seconds of a worker, measured: run first (tests/scheduling.py)

DELIVERY_BATCH = 200


def settings_for(server) -> Settings:
    return server.settings()


@pytest.fixture(scope="module")
def loaded(analytics_db):
    dataset = datasets.generate(seed=11)
    deliver(analytics_db, dataset.messages, batch_size=DELIVERY_BATCH)
    return dataset


def test_every_number_matches_the_metric_definitions(analytics_db, loaded):
    assert_matches(analytics_db, loaded)


def first_delivered_days(messages: list[dict], batch_size: int) -> dict[tuple[str, str, str], int]:
    """Jobs per (user, workflow, day): the day of a job's earliest event in the first batch that held it.

    The gate keeps one row per job of a block, with the least event time of that block; later
    blocks find the job already seen. So a job whose `started` arrives in an earlier batch than its
    `created` counts on the day it started.
    """
    first: dict[tuple[str, str, str], str] = {}
    for start in range(0, len(messages), batch_size):
        in_batch: dict[tuple[str, str, str], str] = {}
        for message in messages[start : start + batch_size]:
            job = (message["user_id"], message["workflow_id"], message["job_id"])
            if job not in first:
                in_batch[job] = min(in_batch.get(job, message["event_time"]), message["event_time"])
        first.update(in_batch)
    days: dict[tuple[str, str, str], int] = defaultdict(int)
    for (user, workflow, _job), event_time in first.items():
        days[(user, workflow, event_time[:10])] += 1  # ISO times in UTC ('...Z'): the date is the prefix
    return dict(days)


def test_daily_jobs_follow_the_day_each_job_appeared(analytics_db, loaded):
    rows = query(
        analytics_db,
        f"""SELECT user_id, workflow_id, toString(day) AS day, sum(jobs) AS jobs FROM analytics.workflow_daily
            WHERE startsWith(user_id, '{loaded.prefix}') AND workflow_id NOT LIKE '%legacy%'
            GROUP BY user_id, workflow_id, day HAVING jobs != 0""",
    )
    stored = {(r["user_id"], r["workflow_id"], r["day"]): int(r["jobs"]) for r in rows}
    expected = first_delivered_days(loaded.messages["jobs"], DELIVERY_BATCH)
    assert stored == expected
    # The data set spreads jobs over many days, so a wrong day cannot hide behind equal totals.
    assert len({day for _, _, day in expected}) > 5


def test_redelivering_everything_later_changes_nothing(analytics_db, loaded):
    deliver(analytics_db, loaded.messages, batch_size=97)
    assert_matches(analytics_db, loaded)


def test_out_of_order_job_events_merge_into_one_state(analytics_db):
    prefix = "order-" + datasets.generate(seed=0, users=0).prefix
    ids = {"user_id": f"{prefix}-u", "workflow_id": f"{prefix}-w", "job_id": f"{prefix}-j"}
    completed = {
        "event_id": f"{prefix}-3",
        "event_time": "2026-11-20T10:10:00.250Z",
        "event_type": "job",
        "event_name": "completed",
        "status": "COMPLETED",
        "started_at": "2026-11-20T10:00:00Z",
        "completed_at": "2026-11-20T10:10:00.250Z",
        **ids,
    }
    started = {
        "event_id": f"{prefix}-2",
        "event_time": "2026-11-20T10:00:00Z",
        "event_type": "job",
        "event_name": "started",
        "status": "RUNNING",
        "started_at": "2026-11-20T10:00:00Z",
        **ids,
    }
    created = {
        "event_id": f"{prefix}-1",
        "event_time": "2026-11-20T09:59:00Z",
        "event_type": "job",
        "event_name": "created",
        "status": "pending",
        **ids,
    }
    for batch in ([completed], [started, completed], [created]):
        assert post_batch(analytics_db, "jobs", batch).status == 200
    [state] = query(analytics_db, f"SELECT * FROM analytics.job_states WHERE user_id = '{ids['user_id']}'")
    # Either spelling of a status is stored in one: lower case.
    assert (state["state"], state["status"], int(state["events"])) == ("completed", "completed", 3)
    [totals] = query(analytics_db, f"SELECT * FROM analytics.user_totals WHERE user_id = '{ids['user_id']}'")
    assert (int(totals["total_jobs"]), int(totals["total_job_execution_duration"])) == (1, 600)


def test_a_job_that_failed_before_it_started_counts_as_failed_taking_no_time(analytics_db):
    """A scheduler's job can fail while queued (an image it cannot pull): its `failed` event has no
    started_at. It was refused, so the failure was in no outcome and the job stayed queued."""
    prefix = "unstarted-" + datasets.generate(seed=0, users=0).prefix
    ids = {"user_id": f"{prefix}-u", "workflow_id": f"{prefix}-w", "job_id": f"{prefix}-j", "event_type": "job"}
    created = {
        "event_id": f"{prefix}-1",
        "event_time": "2026-11-20T09:59:00Z",
        "event_name": "created",
        "status": "QUEUED",
        **ids,
    }
    failed = {
        "event_id": f"{prefix}-2",
        "event_time": "2026-11-20T10:00:00Z",
        "event_name": "failed",
        "status": "FAILED",
        "started_at": None,
        "completed_at": "2026-11-20T10:00:00Z",
        **ids,
    }
    response = post_batch(analytics_db, "jobs", [created, failed])
    assert response.status == 200, response.data
    [totals] = query(
        analytics_db,
        f"""SELECT sum(jobs) AS jobs, sum(jobs_failed) AS failed, sum(job_execution_seconds) AS seconds
            FROM analytics.workflow_totals WHERE user_id = '{ids["user_id"]}'""",
    )
    assert {name: int(value) for name, value in totals.items()} == {"jobs": 1, "failed": 1, "seconds": 0}
    [state] = query(analytics_db, f"SELECT state FROM analytics.job_states WHERE user_id = '{ids['user_id']}'")
    assert state["state"] == "failed"
    # No duration, so no percentile: a 0 would pull every percentile of its day down.
    [digests] = query(
        analytics_db,
        f"SELECT count() AS n FROM analytics.job_duration_daily WHERE user_id = '{ids['user_id']}'",
    )
    assert int(digests["n"]) == 0
    # A completed job still needs its start.
    completed = {**failed, "event_id": f"{prefix}-3", "event_name": "completed", "status": "COMPLETED"}
    assert "started_job_has_started_at" in post_batch(analytics_db, "jobs", [completed]).data.decode()


def test_a_job_that_ends_again_in_a_later_insert_counts_its_first_end_once(analytics_db):
    prefix = "ends-" + datasets.generate(seed=0, users=0).prefix
    job = {"user_id": f"{prefix}-u", "workflow_id": f"{prefix}-w", "event_type": "job"}
    started = {"event_name": "started", "status": "running", "started_at": "2026-11-20T10:00:00Z"}
    ended = {**started, "completed_at": "2026-11-20T10:01:00Z"}

    def event(n: int, job_id: str, at: str, **fields) -> dict:
        return {**job, **fields, "event_id": f"{prefix}-{n}", "job_id": job_id, "event_time": at}

    first = [
        event(1, "a", "2026-11-20T10:00:00Z", **started),
        event(2, "a", "2026-11-20T10:01:00Z", **{**ended, "event_name": "completed", "status": "completed"}),
    ]
    # a's second ending, under another event id, beside events of another job that does not end
    later = [
        event(3, "a", "2026-11-20T10:02:00Z", **{**ended, "event_name": "failed", "status": "failed"}),
        event(4, "b", "2026-11-20T10:02:00Z", **started),
    ]
    for batch in (first, later):
        assert post_batch(analytics_db, "jobs", batch).status == 200
    [totals] = query(
        analytics_db,
        f"""SELECT sum(jobs) AS jobs, sum(jobs_completed) AS completed, sum(jobs_failed) AS failed
            FROM analytics.workflow_totals WHERE user_id = '{job["user_id"]}'""",
    )
    assert {name: int(value) for name, value in totals.items()} == {"jobs": 2, "completed": 1, "failed": 0}


CONTRACT_BREAKS = [
    ("workflows", {"event_id": "", "event_name": "created"}, "event_id_is_required"),
    ("workflows", {"event_name": "renamed"}, "event_name_is_known"),
    ("workflows", {"event_type": "job"}, "event_type_is_workflow"),
    ("workflows", {"workflow_id": None}, "workflow_id_is_required"),
    ("workflows", {"event_time": "not a time"}, "event_time"),
    ("jobs", {"event_name": "completed", "started_at": None}, "started_job_has_started_at"),
    ("jobs", {"completed_at": "2026-11-20T08:00:00Z"}, "finished_job_has_its_times"),
    ("jobs", {"status": "Completed"}, "status_is_known"),
    ("jobs", {"status": "FAILED"}, "status_matches_event_name"),
    ("job_logs", {"count": -3}, "count_is_a_positive_integer"),
    ("job_logs", {"count": "many"}, "count"),
    ("analytics", {"EventType": "JOBS", "Data": {}}, "JOBS_have_a_duration"),
    ("analytics", {"EventType": "SOMETHING"}, "EventType_is_known"),
    ("job_logs", {"_offset": 7}, "no_kafka_columns"),  # taken as Kafka's, it was a silent dead letter
    ("analytics", {"EventKey": "", "_topic": "analytics", "_partition": 0, "_offset": 0}, "no_kafka_columns"),
    ("telemetry", {"event_id": 42}, "event_id_is_a_string"),
    ("telemetry", {"event_time": "yesterday"}, "event_time_is_iso8601"),
]


def valid_message(topic: str, prefix: str, n: int) -> dict:
    base = {
        "event_id": f"{prefix}-{n}",
        "event_time": "2026-11-20T10:00:00.000Z",
        "user_id": f"{prefix}-u",
        "workflow_id": f"{prefix}-w",
    }
    if topic == "workflows":
        return {**base, "event_type": "workflow", "event_name": "created", "kind": "HEARTBEAT"}
    if topic == "jobs":
        return {
            **base,
            "event_type": "job",
            "event_name": "completed",
            "status": "COMPLETED" if n % 2 else "completed",
            "job_id": f"{prefix}-j{n}",
            "started_at": "2026-11-20T09:00:00Z",
            "completed_at": "2026-11-20T10:00:00Z",
        }
    if topic == "job_logs":
        return {**base, "event_type": "job_log", "event_name": "created", "job_id": f"{prefix}-j", "count": 2}
    if topic == "analytics":
        return {
            "EventKey": f"{prefix}-{n}",
            "UserID": f"{prefix}-u",
            "WorkflowID": f"{prefix}-w",
            "EventType": "LOGS",
            "Data": {"count": 4},
        }
    return {**base, "event_type": "metric", "event_name": "cpu", "value": 0.5}


@pytest.mark.parametrize(("topic", "change", "named"), CONTRACT_BREAKS, ids=[f"{t}-{n}" for t, _, n in CONTRACT_BREAKS])
def test_a_contract_break_refuses_the_whole_batch_with_a_named_error(analytics_db, topic, change, named):
    prefix = datasets.generate(seed=1, users=0).prefix + "-" + named
    batch = [valid_message(topic, prefix, n) for n in range(20)]
    batch[13] = {**batch[13], **change}
    response = post_batch(analytics_db, topic, batch)
    assert response.status == 400, response.data  # the sender's data: no client retries it as it is
    message = response.data.decode()
    assert named in message
    if "event refused, " in message:  # a rule (not a parse error): the event is named too
        named_event = {"analytics": f'with EventKey "{prefix}-13"'}.get(topic, f'"{prefix}-13"')
        assert f"{topic} event {named_event} refused, " in message or " event without an " in message, message
    assert "FUNCTION throwIf" not in message  # the rule's words, not the expression that checks it
    assert query(analytics_db, f"SELECT count() AS n FROM analytics.workflow_totals WHERE user_id = '{prefix}-u'")[0][
        "n"
    ] in (0, "0")
    # The same batch without the broken event is taken whole.
    del batch[13]
    assert post_batch(analytics_db, topic, batch).status == 200


def test_a_refusal_names_the_rule_of_its_own_batch_first_refused_row(analytics_db):
    """One throwIf names the rule, its message read from the block (a scalar subquery): each insert's
    refusal is its own, never an earlier block's, and names its first refused row's rule."""
    prefix = datasets.generate(seed=1, users=0).prefix + "-own-refusal"
    batch = [valid_message("jobs", prefix, n) for n in range(6)]
    batch[2] = {**batch[2], "status": "Completed"}  # status_is_known
    batch[4] = {**batch[4], "event_name": "renamed"}  # event_name_is_known
    first = post_batch(analytics_db, "jobs", batch).data.decode()
    assert f'jobs event "{prefix}-2" refused, status_is_known: ' in first and "event_name_is_known" not in first, first
    second = post_batch(analytics_db, "jobs", [batch[4]]).data.decode()
    assert f'jobs event "{prefix}-4" refused, event_name_is_known: ' in second and "status_is_known" not in second
    # Rules after the first in the contract's order are named too (the dead letters' verdict).
    last = {**batch[0], "completed_at": "2026-11-20T08:00:00Z"}
    assert (
        f'jobs event "{prefix}-0" refused, finished_job_has_its_times: '
        in post_batch(analytics_db, "jobs", [last]).data.decode()
    )
    assert post_batch(analytics_db, "jobs", [batch[0], batch[1]]).status == 200


def test_a_line_that_is_not_json_refuses_the_batch(analytics_db):
    response = post_batch(analytics_db, "job_logs", [])
    assert response.status == 200  # an empty batch is fine
    from tests.intake import HTTP

    body = b'{"event_id": "nj-1", "event_time": "2026-11-20T10:00:00Z"}\n{not json at all\n'
    refused = HTTP.request(
        "POST", f"{analytics_db.url}/?query=INSERT%20INTO%20analytics.job_logs_queue%20FORMAT%20JSONEachRow", body=body
    )
    assert refused.status == 400
    assert b"Cannot parse" in refused.data or b"CANNOT_PARSE" in refused.data


def test_telemetry_keeps_every_attribute_queryable(analytics_db):
    prefix = datasets.generate(seed=2, users=0).prefix
    event = {
        "event_id": f"{prefix}-t",
        "event_time": "2026-11-20T10:00:00.123Z",
        "event_type": "behavioral",
        "event_name": "deploy-success",
        "service_name": "cli",
        "service_version": "1.2.3",
        "install_id": "abc",
        "user_id": f"{prefix}-u",
        "details": {"region": "eu", "attempts": 2},
    }
    assert post_batch(analytics_db, "telemetry", [event, event]).status == 200
    rows = query(
        analytics_db,
        f"""SELECT event_name, service_name, attributes.service_version AS version,
                   attributes.details.region AS region, attributes.details.attempts AS attempts
            FROM analytics.telemetry_events WHERE user_id = '{prefix}-u'""",
    )
    assert rows == [
        {"event_name": "deploy-success", "service_name": "cli", "version": "1.2.3", "region": "eu", "attempts": 2}
    ]


def test_log_lines_expire_but_counts_do_not(analytics_db):
    old = datasets.generate(seed=3, users=2, days_ago=200, duplicate_rate=0)
    deliver(analytics_db, old.messages)
    execute(analytics_db, "OPTIMIZE TABLE analytics.job_log_events FINAL")
    lines = query(
        analytics_db, f"SELECT count() AS n FROM analytics.job_log_events WHERE startsWith(user_id, '{old.prefix}')"
    )
    assert int(lines[0]["n"]) == 0  # older than the 720-hour retention: gone
    assert_matches(analytics_db, old)  # ... and every count is still there
    deliver(analytics_db, old.messages)  # a redelivery of the expired lines is still recognised
    assert_matches(analytics_db, old)


def test_a_batch_spanning_years_of_event_times_is_taken_whole(analytics_db):
    # Raw history is partitioned by the event's month and job logs by its day: a backlog or a replay
    # of ten years in one insert makes hundreds of partitions, past ClickHouse's default limit (100).
    years = datasets.generate(seed=4, users=30, workflows_per_user=8, days_ago=3700, span_days=3650)
    for topic, messages in years.messages.items():
        response = post_batch(analytics_db, topic, messages)
        assert response.status == 200, response.data.decode()[:500]
    [row] = query(
        analytics_db,
        f"""SELECT uniqExact(toYYYYMM(event_time)) AS months FROM analytics.job_events
            WHERE startsWith(user_id, '{years.prefix}')""",
    )
    assert int(row["months"]) > 100
    assert_matches(analytics_db, years)


def test_dbt_tests_pass_on_loaded_data_and_catch_a_corrupted_day(analytics_db, loaded):
    settings = settings_for(analytics_db)
    passing = run_dbt(settings, "test", capture=True)
    assert passing.returncode == 0, passing.stdout[-4000:]  # dbt names the failing tests
    user, workflow = sorted(loaded.expected.workflows)[0]
    corrupt = f"""INSERT INTO analytics.workflow_daily (user_id, workflow_id, day, kind, jobs)
                  VALUES ('{user}', '{workflow}', today(), (0, ''), {{n}})"""
    execute(analytics_db, corrupt.format(n=5))
    try:
        broken = run_dbt(settings, "test", "--select", "workflow_daily_matches_raw_history", capture=True)
        assert broken.returncode != 0
        assert "workflow_daily_matches_raw_history" in broken.stdout
    finally:
        execute(analytics_db, corrupt.format(n=-5))
    # Undone, as when the first run passed: the workflow's days add up to its jobs again.
    [row] = query(
        analytics_db,
        f"SELECT sum(jobs) AS n FROM analytics.workflow_daily WHERE user_id = '{user}' AND workflow_id = '{workflow}'",
    )
    assert int(row["n"]) == loaded.expected.workflow(user, workflow)[0]


def test_migrate_again_keeps_every_accepted_event(analytics_db, loaded):
    before = query(analytics_db, "SELECT count() AS n FROM analytics.job_events")[0]["n"]
    result = run_dbt(settings_for(analytics_db), "build", capture=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert query(analytics_db, "SELECT count() AS n FROM analytics.job_events")[0]["n"] == before
    assert_matches(analytics_db, loaded)


@pytest.mark.parametrize("flag", ["--full-refresh", "--empty"])
def test_a_rebuild_keeps_every_table_and_view_as_it_is(analytics_db, loaded, flag):
    # A model's SELECT is empty here (data arrives through the views): a full refresh would empty
    # every table, and re-create every view with a window in which inserts miss it. `--empty`
    # renders each ref as a subquery that reads nothing: a view over one would still fire on its
    # table's inserts and pass nothing on (dbt_project/macros/refs.sql).
    kept = (
        "SELECT name, if(engine = 'View', '', toString(uuid)) AS kept_uuid, create_table_query"
        " FROM system.tables WHERE database = 'analytics' ORDER BY name"
    )
    before = query(analytics_db, kept)
    result = run_dbt(settings_for(analytics_db), "build", flag, capture=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert query(analytics_db, kept) == before
    assert_matches(analytics_db, loaded)


def test_the_first_seen_gates_store_compacts_universally_and_filters_new_keys(analytics_db):
    """seen_keys' RocksDB store runs with universal compaction and a Bloom filter (embedded/engine.py
    says why; RocksDB does not write its block cache's size into the OPTIONS file)."""
    sql = "SELECT data_paths FROM system.tables WHERE database = 'analytics' AND name = 'seen_keys'"
    [table] = query(analytics_db, sql)
    [store] = table["data_paths"]
    latest = max(Path(store).glob("OPTIONS-*"))  # RocksDB writes a new one each time it opens the store
    options = latest.read_text()
    assert "compaction_style=kCompactionStyleUniversal" in options
    assert "filter_policy=bloomfilter:10:false" in options


def test_retention_follows_the_vars_on_an_existing_table(own_analytics_db, tmp_path):
    # A server of its own: a shorter retention applied once bounds which lines may have expired (for
    # reconciliation and the dbt tests) on that server from then on.
    server, settings = own_analytics_db

    def create_statement() -> str:
        return query(
            server,
            "SELECT create_table_query AS q FROM system.tables"
            " WHERE database = 'analytics' AND name = 'job_log_events'",
        )[0]["q"]

    assert "TTL toDateTime(least(event_time + toIntervalHour(720), toDateTime64('2106-02-07 06:28:15', 3, 'UTC')))" in (
        create_statement()
    )
    try:
        # The settings carry the vars, as `analytics migrate` passes them (a second --vars would replace all).
        audit_settings = settings.model_copy(update={"audit_mode": True})
        # Other vars parse the project into targets of their own, keeping the session's parse.
        audit_target = tmp_path / "audit"
        audit = run_dbt(audit_settings, "run", "--select", "job_log_events", capture=True, target_path=audit_target)
        assert audit.returncode == 0, audit.stdout[-3000:]
        assert " TTL " not in create_statement()
        again = run_dbt(audit_settings, "run", "--select", "job_log_events", capture=True, target_path=audit_target)
        assert again.returncode == 0, again.stdout[-3000:]  # a second audit-mode run has no TTL to remove
        shorter_settings = settings.model_copy(update={"log_retention_hours": 48})
        shorter = run_dbt(
            shorter_settings, "run", "--select", "job_log_events", capture=True, target_path=tmp_path / "shorter"
        )
        assert shorter.returncode == 0, shorter.stdout[-3000:]
        assert "toIntervalHour(48)" in create_statement()
        # A run without the vars keeps the retention in force.
        assert run_dbt(settings, "run", "--select", "job_log_events", capture=True).returncode == 0
        assert "toIntervalHour(48)" in create_statement()
    finally:
        back = settings.model_copy(update={"log_retention_hours": 720})
        run = run_dbt(back, "run", "--select", "job_log_events", capture=True, target_path=tmp_path / "back")
        assert run.returncode == 0, run.stdout[-3000:]
    assert "toIntervalHour(720)" in create_statement()
