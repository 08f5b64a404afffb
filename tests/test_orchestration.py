"""Dagster in-process against a real embedded ClickHouse: assets, backfills, checks, sensor, housekeeping.

The module has a server of its own, whose schema Dagster builds: its checks read global state
(the newest event of each topic, dead letters, consumer lag) that other suites' data would make
unpredictable.
"""

import datetime as dt
import json
import logging
import re
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin

from analytics.cli import main
from core.settings.composed import Settings
from operations.backfill import BackfillFailed, rebuild_days
from operations.dbt import run_dbt
from orchestration.definitions import build_definitions
from orchestration.health.checks import HEALTH_CHECKS, consumer_lags
from orchestration.health.sensors import ORPHANED_AFTER_SECONDS, build_health_sensor
from orchestration.resources import ClickHouse
from tests import datasets, embedded_server
from tests.intake import deliver, execute, post_batch, query
from tests.test_schema import assert_matches

pytestmark = pytest.mark.long_file(78)  # seconds of a worker, measured: run first (tests/scheduling.py)

RECONCILIATION = [
    "workflow_daily:workflow_daily_matches_raw_history",
    "workflow_totals:workflow_totals_match_raw_history",
    "workflow_totals:workflow_totals_add_up_to_daily",
    "job_log_totals:job_log_totals_match_raw_history",
]
PYTHON_CHECKS = {"newest_event_is_recent", "no_new_dead_letters", "consumer_lag_below_max"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An empty embedded ClickHouse: no schema yet."""
    server = embedded_server.start(tmp_path_factory.mktemp("orchestration") / "clickhouse")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def settings(server) -> Settings:
    return server.settings()


@pytest.fixture(scope="module")
def defs(settings) -> dg.Definitions:
    return build_definitions(settings)


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="module")
def built(defs, instance) -> dg.ExecuteInProcessResult:
    """Every dbt model materialised in-process on the empty server: the schema, built by Dagster."""
    graph = defs.resolve_asset_graph()
    dbt_keys = [key for key in graph.get_all_asset_keys() if key != dg.AssetKey("daily_reconciliation")]
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=dbt_keys, raise_on_error=False
    )


@pytest.fixture(scope="module")
def loaded(server, built) -> datasets.Dataset:
    assert built.success
    dataset = datasets.generate(seed=21)
    # One batch per topic: every job then counts on the day it was created, as the expected numbers say.
    deliver(server, dataset.messages, batch_size=100_000)
    return dataset


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


def run_health_checks(defs, instance) -> dg.ExecuteInProcessResult:
    """The Python health checks alone (the pipeline_health job also runs the dbt reconciliation tests)."""
    keys = [key for checks in HEALTH_CHECKS for key in checks.check_keys]
    return dg.materialize(
        HEALTH_CHECKS,
        selection=dg.AssetSelection.checks(*keys),
        resources=defs.resources,
        instance=instance,
        raise_on_error=False,
    )


def daily_jobs(server, prefix: str) -> dict[tuple[str, str, dt.date], int]:
    rows = query(
        server,
        f"""SELECT user_id, workflow_id, toString(day) AS day, sum(jobs) AS jobs FROM analytics.workflow_daily
            WHERE startsWith(user_id, '{prefix}') AND workflow_id NOT LIKE '%legacy%'
            GROUP BY user_id, workflow_id, day HAVING jobs != 0""",
    )
    return {(r["user_id"], r["workflow_id"], dt.date.fromisoformat(r["day"])): int(r["jobs"]) for r in rows}


def test_materialising_every_dbt_asset_in_process_builds_the_schema(defs, built, loaded, server):
    assert built.success
    graph = defs.resolve_asset_graph()
    materialized = {event.asset_key for event in built.get_asset_materialization_events()}
    assert materialized == set(graph.get_all_asset_keys()) - {dg.AssetKey("daily_reconciliation")}
    dbt_tests = {name: e for name, e in evaluations(built).items() if e.check_name not in PYTHON_CHECKS}
    assert len(dbt_tests) == len([key for key in graph.asset_check_keys if key.name not in PYTHON_CHECKS])
    assert all(e.passed for e in dbt_tests.values()), [name for name, e in dbt_tests.items() if not e.passed]
    assert_matches(server, loaded)  # the schema Dagster built takes events in and counts them right


def test_a_corrupted_day_fails_reconciliation_and_its_backfill_repairs_it_exactly(server, defs, instance, loaded):
    day = sorted({day for (_, _, day) in loaded.expected.daily_jobs})[5]
    workflows_of_the_day = {(u, w) for (u, w, d) in loaded.expected.daily_jobs if d == day}
    measures = "workflow_events, jobs, jobs_completed, jobs_failed, jobs_cancelled, job_execution_seconds, joblogs"
    # A replay that counted the day twice: the totals get the day's counters again, then the day itself.
    execute(
        server,
        f"""INSERT INTO analytics.workflow_totals (user_id, workflow_id, {measures})
            SELECT user_id, workflow_id, {", ".join(f"sum({m})" for m in measures.split(", "))}
            FROM analytics.workflow_daily WHERE day = '{day}' GROUP BY user_id, workflow_id""",
    )
    execute(server, f"INSERT INTO analytics.workflow_daily SELECT * FROM analytics.workflow_daily WHERE day = '{day}'")
    # And a job of the day whose log entries were counted again.
    [job] = query(
        server,
        f"""SELECT user_id, workflow_id, job_id FROM analytics.job_log_events
            WHERE toDate(event_time) = '{day}' ORDER BY user_id, workflow_id, job_id LIMIT 1""",
    )
    execute(
        server,
        f"""INSERT INTO analytics.job_log_totals (user_id, workflow_id, job_id, lines, entries)
            VALUES ('{job["user_id"]}', '{job["workflow_id"]}', '{job["job_id"]}', 0, 7)""",
    )

    health = defs.resolve_job_def("pipeline_health")
    broken = health.execute_in_process(instance=instance, raise_on_error=False)
    assert not broken.success
    # The failed dbt step names its debug log, which stays to be read.
    [failure] = broken.get_step_failure_events()
    message = failure.step_failure_data.error.message
    dbt_log = Path(re.search(r"view the dbt debug log: (\S+dbt\.log)", message).group(1))
    assert "workflow_daily_matches_raw_history" in dbt_log.read_text()
    found = evaluations(broken)
    assert not found["workflow_daily:workflow_daily_matches_raw_history"].passed
    assert not found["workflow_totals:workflow_totals_match_raw_history"].passed
    assert found["workflow_totals:workflow_totals_add_up_to_daily"].passed  # consistent, and wrong
    assert not found["job_log_totals:job_log_totals_match_raw_history"].passed
    # Each failing check names what to rebuild: the day, the workflows, the job.
    daily = found["workflow_daily:workflow_daily_matches_raw_history"]
    assert daily.description.startswith(f"Off their raw history on {day}:")
    assert f"analytics backfill --day {day}`" in daily.description
    off = daily.metadata["off"].value
    assert all(f"| {user} | {workflow} | {day} |" in off for user, workflow in workflows_of_the_day)
    # And by how much: the day counted twice holds each of its workflows' jobs twice.
    doubled = [(key, jobs) for key, jobs in loaded.expected.daily_jobs.items() if key[2] == day and jobs]
    assert doubled
    for (user, workflow, _), jobs in doubled:
        assert f"| {user} | {workflow} | {day} | " in off
        assert f"jobs {2 * jobs} in workflow_daily, {jobs} in raw history (+{jobs})" in off
    assert " The first: " in daily.description and " in raw history (+" in daily.description
    totals = found["workflow_totals:workflow_totals_match_raw_history"].description
    assert all(f"{user}/{workflow}" in totals for user, workflow in workflows_of_the_day)
    (user, workflow, _), jobs = doubled[0]
    assert f"{user}/{workflow} (" in totals and f"jobs {2 * jobs} in workflow_totals, {jobs} in raw history" in totals
    logs = found["job_log_totals:job_log_totals_match_raw_history"].description
    assert f"{job['user_id']}/{job['workflow_id']}/{job['job_id']} (entries " in logs
    assert "in job_log_totals" in logs and "in raw history (+7)" in logs

    backfill = defs.resolve_job_def("daily_reconciliation_job")
    repaired = backfill.execute_in_process(instance=instance, partition_key=day.isoformat())
    [materialization] = repaired.asset_materializations_for_node("daily_reconciliation")
    assert materialization.partition == day.isoformat()
    assert materialization.metadata["workflow_totals_corrected"].value == len(workflows_of_the_day)
    assert materialization.metadata["workflow_daily_corrected"].value == len(workflows_of_the_day)
    assert materialization.metadata["job_log_totals_corrected"].value == 1

    healthy = health.execute_in_process(instance=instance, raise_on_error=False)
    found = evaluations(healthy)
    assert all(found[name].passed for name in RECONCILIATION), found
    assert dbt_log.exists()  # a run that passed removes its own target directory, not a failed one's
    assert not (dbt_log.parent.parent / healthy.run_id).exists()
    # Exact: every workflow's totals and every day's jobs as computed independently from the events.
    assert_matches(server, loaded)
    expected_daily = {key: jobs for key, jobs in loaded.expected.daily_jobs.items() if jobs}
    assert daily_jobs(server, loaded.prefix) == expected_daily

    # Idempotent: the same backfill again corrects nothing and changes no number.
    again = backfill.execute_in_process(instance=instance, partition_key=day.isoformat())
    [materialization] = again.asset_materializations_for_node("daily_reconciliation")
    assert materialization.metadata["workflow_totals_corrected"].value == 0
    assert materialization.metadata["workflow_daily_corrected"].value == 0
    assert materialization.metadata["job_log_totals_corrected"].value == 0
    assert_matches(server, loaded)
    assert daily_jobs(server, loaded.prefix) == expected_daily


def test_backfill_rebuilds_the_duration_digests_of_the_day(server, settings, loaded):
    day = sorted({day for (_, _, day) in loaded.expected.daily_jobs})[7]
    of_the_day = f"FROM analytics.job_duration_daily WHERE day = '{day}'"
    count_rows = f"SELECT count() AS n {of_the_day}"
    keys = f"SELECT count() AS n FROM (SELECT DISTINCT user_id, workflow_id {of_the_day})"
    execute(server, f"INSERT INTO analytics.job_duration_daily SELECT * {of_the_day}")
    assert int(query(server, count_rows)[0]["n"]) > int(query(server, keys)[0]["n"])
    rebuild_days(settings, [day])
    # One state per workflow and day, merged from the raw completions.
    assert int(query(server, count_rows)[0]["n"]) == int(query(server, keys)[0]["n"])


def test_backfill_deletes_the_rows_of_a_day_the_raw_history_does_not_have(server, settings, loaded):
    # A month holds many days: the rows of a rebuilt day are corrected and deleted, never the partition.
    day = sorted({day for (_, _, day) in loaded.expected.daily_jobs})[3]
    ghost = "user_id = 'ghost-user'"
    execute(
        server,
        f"""INSERT INTO analytics.workflow_daily (user_id, workflow_id, day, kind, jobs, jobs_completed)
            VALUES ('ghost-user', 'ghost-workflow', '{day}', ('{day}', 'BATCH'), 3, 2)""",
    )
    execute(
        server,
        f"""INSERT INTO analytics.job_duration_daily SELECT 'ghost-user', 'ghost-workflow', toDate('{day}'),
            quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(toFloat64(7))""",
    )
    rebuild_days(settings, [day])
    for table in ("workflow_daily", "job_duration_daily"):
        assert int(query(server, f"SELECT count() AS n FROM analytics.{table} WHERE {ghost}")[0]["n"]) == 0, table
    expected_daily = {key: jobs for key, jobs in loaded.expected.daily_jobs.items() if jobs}
    assert daily_jobs(server, loaded.prefix) == expected_daily  # the other workflows of the day and month stand


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_backfill_deletes_a_workflow_the_raw_history_does_not_have_from_the_totals(server, settings):
    # Counted in both aggregates (as the views count an event) with no raw history behind it: once
    # its day is rebuilt, no user has it; its totals' rows summed to zero were still a workflow of
    # user_totals (and of GetUserAnalytics' total_workflows).
    user, day = f"ghost-{uuid.uuid4().hex[:8]}", "2026-02-03"
    for table, keys in (("workflow_daily", f"'{user}', 'w-1', '{day}'"), ("workflow_totals", f"'{user}', 'w-1'")):
        day_column = ", day" if table == "workflow_daily" else ""
        execute(
            server,
            f"INSERT INTO analytics.{table} (user_id, workflow_id{day_column}, kind, workflow_events, jobs)"
            f" VALUES ({keys}, ('{day}', 'BATCH'), 1, 2)",
        )
    rebuild_days(settings, [dt.date.fromisoformat(day)])
    assert query(server, f"SELECT * FROM analytics.user_totals WHERE user_id = '{user}'") == []
    assert (
        int(query(server, f"SELECT count() AS n FROM analytics.workflow_totals WHERE user_id = '{user}'")[0]["n"]) == 0
    )
    rebuild_days(settings, [dt.date.fromisoformat(day)])  # and again: nothing left to do


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_backfill_keeps_the_stored_joblogs_of_days_whose_raw_lines_expired(server, settings):
    old = datasets.generate(seed=23, users=2, days_ago=200, duplicate_rate=0)
    deliver(server, old.messages, batch_size=100_000)
    execute(server, "OPTIMIZE TABLE analytics.job_log_events FINAL")
    lines = f"SELECT count() AS n FROM analytics.job_log_events WHERE startsWith(user_id, '{old.prefix}')"
    assert int(query(server, lines)[0]["n"]) == 0  # older than the retention
    stored = f"""SELECT toString(day) AS day, sum(joblogs) AS joblogs FROM analytics.workflow_daily
                 WHERE startsWith(user_id, '{old.prefix}') GROUP BY day ORDER BY day"""
    before = query(server, stored)
    days = sorted({row["day"] for row in before})

    result = CliRunner().invoke(main, ["backfill", *(f"--day={day}" for day in days)], env=settings.as_environment())
    assert result.exit_code == 0, result.output
    assert f"{days[0]}: rebuilt" in result.output
    assert "workflow_totals: 0 workflows corrected" in result.output
    assert "workflow_daily: 0 workflow days corrected" in result.output
    assert "job_log_totals: 0 jobs corrected" in result.output  # their lines expired: the counts stand
    assert query(server, stored) == before
    assert_matches(server, old)


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_a_failed_backfill_leaves_no_staging_table(server, settings):
    execute(server, "RENAME TABLE analytics.job_duration_daily TO analytics.job_duration_daily_aside")
    try:
        with pytest.raises(BackfillFailed, match="rebuild_days failed"):
            rebuild_days(settings, [dt.date(2026, 11, 20)])
    finally:
        execute(server, "RENAME TABLE analytics.job_duration_daily_aside TO analytics.job_duration_daily")
    leftovers = query(server, "SELECT name FROM system.tables WHERE database = 'analytics' AND name LIKE '%rebuild%'")
    assert leftovers == []


def test_freshness_fails_for_a_quiet_topic_and_passes_once_events_arrive(server, defs, instance, loaded, capfd):
    # An event dated years ahead is no sign of life: it kept the check green however quiet the topic.
    future = {
        "event_id": f"{loaded.prefix}-future",
        "event_time": "2030-01-01T00:00:00Z",
        "event_type": "workflow",
        "event_name": "created",
        "user_id": f"future-{uuid.uuid4().hex[:8]}",
        "workflow_id": "future-wf",
        "kind": "HEARTBEAT",
    }
    assert post_batch(server, "workflows", [future]).status == 200
    found = evaluations(run_health_checks(defs, instance))
    stale = found["workflow_events:newest_event_is_recent"]
    assert not stale.passed
    assert stale.severity == dg.AssetCheckSeverity.WARN
    # The sensor says so as a warning (its log is the tick's, on stderr): a quiet topic is not an error.
    capfd.readouterr()
    defs.get_sensor_def("pipeline_health_sensor")(dg.build_sensor_context(instance=instance))
    said = capfd.readouterr().err
    assert "- WARNING - check warning: workflow_events:newest_event_is_recent" in said
    assert "check failing: workflow_events:newest_event_is_recent" not in said
    assert stale.metadata["age_seconds"].value > stale.metadata["max_age_seconds"].value
    assert not found["telemetry_events:newest_event_is_recent"].passed
    assert found["telemetry_events:newest_event_is_recent"].description == "no telemetry events yet"

    now = dt.datetime.now(dt.UTC)
    event = {
        "event_id": f"{loaded.prefix}-fresh",
        "event_time": datasets.iso(now),
        "event_type": "workflow",
        "event_name": "created",
        "user_id": f"{loaded.prefix}-fresh-user",
        "workflow_id": f"{loaded.prefix}-fresh-wf",
        "kind": "HEARTBEAT",
    }
    assert post_batch(server, "workflows", [event]).status == 200
    found = evaluations(run_health_checks(defs, instance))
    assert found["workflow_events:newest_event_is_recent"].passed
    assert not found["job_events:newest_event_is_recent"].passed


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_new_dead_letters_fail_their_check_and_the_run(server, defs, instance):
    insert = """INSERT INTO analytics.dead_letters (topic, partition, offset, raw_message, error, received_at)
                VALUES ('jobs', 0, {offset}, '{{not json', 'Cannot parse JSON',
                        now64(3, 'UTC') - INTERVAL {age} MINUTE)"""
    try:
        execute(server, insert.format(offset=1, age=180))  # outside the 60-minute window
        result = run_health_checks(defs, instance)
        assert result.success
        assert evaluations(result)["dead_letters:no_new_dead_letters"].passed

        execute(server, insert.format(offset=2, age=1))
        result = run_health_checks(defs, instance)
        assert not result.success  # an ERROR check fails the run, which is how the health run turns red
        failed = evaluations(result)["dead_letters:no_new_dead_letters"]
        assert not failed.passed
        assert failed.metadata["new_dead_letters"].value == 1
        assert failed.metadata["by_topic"].value[0]["topic"] == "jobs"
    finally:
        execute(server, "TRUNCATE TABLE analytics.dead_letters")


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_consumer_lag_above_the_maximum_fails_until_the_consumer_catches_up(server, defs, instance, settings):
    insert = """INSERT INTO analytics.kafka_consumer_lag
                (consumer_group, topic, partition, committed_offset, high_watermark, lag, measured_at)
                VALUES ('analytics_jobs', 'jobs', {partition}, 100, {high}, {lag},
                        now64(3, 'UTC') + INTERVAL {later} SECOND)"""
    try:
        execute(server, insert.format(partition=0, high=105, lag=5, later=0))
        assert evaluations(run_health_checks(defs, instance))["kafka_consumer_lag:consumer_lag_below_max"].passed

        execute(server, insert.format(partition=1, high=50_100, lag=50_000, later=0))
        failed = evaluations(run_health_checks(defs, instance))["kafka_consumer_lag:consumer_lag_below_max"]
        assert not failed.passed
        assert failed.metadata["max_lag"].value == 50_000
        assert failed.metadata["behind"].value == [
            {"consumer": "analytics_jobs", "topic": "jobs", "partition": 1, "lag": 50_000}
        ]

        execute(server, insert.format(partition=1, high=50_100, lag=0, later=5))  # a newer measurement
        assert evaluations(run_health_checks(defs, instance))["kafka_consumer_lag:consumer_lag_below_max"].passed
    finally:
        execute(server, "TRUNCATE TABLE analytics.kafka_consumer_lag")


@pytest.mark.usefixtures("built")
def test_a_lag_the_bridge_no_longer_measures_fails_as_a_warning_until_it_does(server, defs, instance):
    """A stopped bridge leaves its last measurement (often 0) behind: the check must not read it as current."""
    insert = """INSERT INTO analytics.kafka_consumer_lag
                (consumer_group, topic, partition, committed_offset, high_watermark, lag, measured_at)
                VALUES ('analytics_jobs', 'jobs', 0, 100, 100, 0, now64(3, 'UTC') - INTERVAL {ago} SECOND)"""
    check = "kafka_consumer_lag:consumer_lag_below_max"
    try:
        execute(server, insert.format(ago=600))
        failed = evaluations(run_health_checks(defs, instance))[check]
        assert not failed.passed and failed.severity == dg.AssetCheckSeverity.WARN
        assert "1 partitions were last measured more than 5 minutes ago" in failed.description
        assert "is the bridge running?" in failed.description
        assert [row["partition"] for row in failed.metadata["stale"].value] == [0]

        execute(server, insert.format(ago=1))  # the bridge measures it again
        assert evaluations(run_health_checks(defs, instance))[check].passed
    finally:
        execute(server, "TRUNCATE TABLE analytics.kafka_consumer_lag")


def test_server_mode_reads_lag_from_system_kafka_consumers(server, settings, built):
    """Server mode asks ClickHouse's Kafka-engine consumers, never the bridge's table."""
    kafka_engine = settings.model_copy(update={"ingest": "kafka"})
    lagging = """INSERT INTO analytics.kafka_consumer_lag
                 (consumer_group, topic, partition, committed_offset, high_watermark, lag, measured_at)
                 VALUES ('analytics_jobs', 'jobs', 0, 100, 50100, 50000, now64(3, 'UTC'))"""
    try:
        execute(server, lagging)  # what a bridge left behind before the switch to Kafka-engine tables
        bridge = consumer_lags(ClickHouse(settings), settings)
        assert [(lag.consumer, lag.partition, lag.lag) for lag in bridge] == [("analytics_jobs", 0, 50_000)]
        # The embedded engine has system.kafka_consumers but no Kafka-engine consumers: the query
        # runs and nothing lags, whatever the bridge's table holds.
        assert consumer_lags(ClickHouse(kafka_engine), kafka_engine) == []
    finally:
        execute(server, "TRUNCATE TABLE analytics.kafka_consumer_lag")


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_health_sensor_requests_a_run_and_flags_each_change_once(server, defs, instance):
    sensor = defs.get_sensor_def("pipeline_health_sensor")
    assert sensor.job_name == "pipeline_health"
    first = a_tick_flagging_a_dead_letter(server, defs, instance)
    assert len(first.run_requests) == 1
    run_health_checks(defs, instance)
    second = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert len(second.run_requests) == 1
    assert DEAD_LETTER_CHECK not in json.loads(second.cursor)


def test_health_sensor_starts_no_run_while_one_is_in_progress(defs, instance):
    sensor = defs.get_sensor_def("pipeline_health_sensor")
    running = dg.DagsterRun(job_name="pipeline_health", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
    instance.add_run(running)
    try:
        skipped = sensor(dg.build_sensor_context(instance=instance))
        assert not skipped.run_requests
        assert skipped.skip_reason.skip_message == "a pipeline_health run is still in progress"
    finally:
        instance.delete_run(running.run_id)
    assert len(sensor(dg.build_sensor_context(instance=instance)).run_requests) == 1


def test_a_health_run_orphaned_in_progress_is_marked_failed_and_no_longer_blocks(server, defs, instance):
    """A kill -9 of Dagster leaves its run STARTED for good: the sensor gave up every tick after."""
    job = defs.resolve_job_def("pipeline_health")
    keys = list(defs.resolve_asset_graph().asset_check_keys)
    later = time.time() + ORPHANED_AFTER_SECONDS + 60  # the clock of a tick half an hour on
    sensor = build_health_sensor(server.settings(), job, keys, clock=lambda: later)
    orphan = dg.DagsterRun(job_name="pipeline_health", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
    instance.add_run(orphan)
    try:
        tick = sensor(dg.build_sensor_context(instance=instance))
        assert len(tick.run_requests) == 1
        assert instance.get_run_by_id(orphan.run_id).status == dg.DagsterRunStatus.FAILURE
        # A run queued as long waits for the run queue (behind a backfill's runs): not failed, and
        # no second run beside it.
        location = RegisteredCodeLocationOrigin(location_name="analytics")
        queued = dg.DagsterRun(
            job_name="pipeline_health",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.QUEUED,
            remote_job_origin=RemoteRepositoryOrigin(location, "__repository__").get_job_origin("pipeline_health"),
        )
        instance.add_run(queued)
        try:
            assert not sensor(dg.build_sensor_context(instance=instance)).run_requests
            assert instance.get_run_by_id(queued.run_id).status == dg.DagsterRunStatus.QUEUED
        finally:
            instance.delete_run(queued.run_id)
        # ... while a run of the same age on the present clock still counts as in progress
        fresh = dg.DagsterRun(job_name="pipeline_health", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
        instance.add_run(fresh)
        now = build_health_sensor(server.settings(), job, keys)
        assert not now(dg.build_sensor_context(instance=instance)).run_requests
        instance.delete_run(fresh.run_id)
    finally:
        instance.delete_run(orphan.run_id)


DEAD_LETTER_CHECK = "dead_letters:no_new_dead_letters"


def a_tick_flagging_a_dead_letter(server, defs, instance) -> dg.SensorResult:
    """A sensor tick after the health checks ran on a new dead letter (gone again afterwards)."""
    execute(
        server,
        """INSERT INTO analytics.dead_letters (topic, raw_message, error, received_at)
           VALUES ('jobs', 'x', 'bad', now64(3, 'UTC'))""",
    )
    try:
        run_health_checks(defs, instance)
        tick = defs.get_sensor_def("pipeline_health_sensor")(dg.build_sensor_context(instance=instance))
        assert DEAD_LETTER_CHECK in json.loads(tick.cursor)
        return tick
    finally:
        execute(server, "TRUNCATE TABLE analytics.dead_letters")


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_a_check_its_last_run_did_not_evaluate_keeps_its_state_and_the_sensor_goes_on(
    server, defs, instance, refused_port
):
    # A health run cancelled, or failing before its checks could run (ClickHouse down), leaves them
    # planned and never evaluated: the sensor must go on ticking, and keep their last state.
    sensor = defs.get_sensor_def("pipeline_health_sensor")
    flag = DEAD_LETTER_CHECK
    failing = a_tick_flagging_a_dead_letter(server, defs, instance)
    unreachable = build_definitions(server.settings().model_copy(update={"clickhouse_http_port": refused_port}))
    assert not run_health_checks(unreachable, instance).success
    key = dg.AssetCheckKey(dg.AssetKey("dead_letters"), "no_new_dead_letters")
    assert not isinstance(instance.get_latest_asset_check_evaluation_record(key).evaluation, dg.AssetCheckEvaluation)
    kept = sensor(dg.build_sensor_context(instance=instance, cursor=failing.cursor))
    assert len(kept.run_requests) == 1
    assert flag in json.loads(kept.cursor)
    run_health_checks(defs, instance)  # evaluated again: passing now
    assert flag not in json.loads(sensor(dg.build_sensor_context(instance=instance, cursor=kept.cursor)).cursor)


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_housekeeping_drops_expired_log_lines_now(server, defs, instance):
    old = datasets.generate(seed=29, users=2, days_ago=120, duplicate_rate=0)
    lines = f"SELECT count() AS n FROM analytics.job_log_events WHERE startsWith(user_id, '{old.prefix}')"
    # Background TTL merges could drop them first; the job must not need them.
    execute(server, "SYSTEM STOP TTL MERGES analytics.job_log_events")
    try:
        deliver(server, old.messages)
        assert int(query(server, lines)[0]["n"]) > 0
        result = defs.resolve_job_def("retention_housekeeping").execute_in_process(instance=instance)
    finally:
        execute(server, "SYSTEM START TTL MERGES analytics.job_log_events")
    assert int(query(server, lines)[0]["n"]) == 0
    [observation] = [e.asset_observation_data.asset_observation for e in result.all_events if e.is_asset_observation]
    assert observation.asset_key == dg.AssetKey("job_log_events")
    assert observation.metadata["rows_past_retention_before"].value > 0
    assert observation.metadata["rows_past_retention_after"].value == 0
    assert_matches(server, old)  # the counts stay


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_housekeeping_removes_the_lines_past_the_retention_of_a_day_not_wholly_past_it(server, defs, instance):
    """A day's partition was dropped only once its last line was past the retention: its earlier
    lines stayed, up to a day longer than the retention said, after the job that applies it."""
    [row] = query(
        server, "SELECT log_retention_hours AS hours, now64(3, 'UTC') AS now FROM analytics.storage_log_retention"
    )
    edge = dt.datetime.fromisoformat(row["now"]).replace(tzinfo=dt.UTC) - dt.timedelta(hours=row["hours"])
    day = edge.replace(hour=0, minute=0, second=0, microsecond=0)
    # One line before the edge and one after it, on the edge's day (each within an hour of it).
    past = edge - min(dt.timedelta(hours=1), (edge - day) / 2)
    kept = edge + min(dt.timedelta(hours=1), (day + dt.timedelta(days=1) - edge) / 2)
    user = f"edge-{uuid.uuid4().hex[:8]}"
    lines = [
        {
            "event_id": f"{user}-{name}",
            "event_time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event_type": "job_log",
            "event_name": "created",
            "user_id": user,
            "workflow_id": "w",
            "job_id": "j",
            "sequence": sequence,
            "message": f"line {name}",
        }
        for sequence, (name, moment) in enumerate((("past", past), ("kept", kept)))
    ]
    stored = f"SELECT event_id FROM analytics.job_log_events WHERE user_id = '{user}' ORDER BY event_id"
    # TTL merges stay on (stopped, they stop the merge that applies the TTL to lines too): they
    # drop only parts wholly past it, and the insert's part is not.
    assert post_batch(server, "job_logs", lines).status == 200
    assert [row["event_id"] for row in query(server, stored)] == [f"{user}-kept", f"{user}-past"]
    result = defs.resolve_job_def("retention_housekeeping").execute_in_process(instance=instance)
    assert [row["event_id"] for row in query(server, stored)] == [f"{user}-kept"]
    [observation] = [e.asset_observation_data.asset_observation for e in result.all_events if e.is_asset_observation]
    assert observation.metadata["rows_past_retention_after"].value == 0
    [totals] = query(server, f"SELECT sum(lines) AS lines FROM analytics.job_log_totals WHERE user_id = '{user}'")
    assert int(totals["lines"]) == 2  # the counts stay


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_housekeeping_keeps_every_line_in_audit_mode(server, defs, settings, instance, tmp_path):
    # The database is in audit mode; this Dagster was started without ANALYTICS_AUDIT_MODE (the
    # housekeeping follows the table, not its own settings).
    old = datasets.generate(seed=31, users=1, days_ago=120, duplicate_rate=0)
    lines = f"SELECT count() AS n FROM analytics.job_log_events WHERE startsWith(user_id, '{old.prefix}')"
    execute(server, "SYSTEM STOP TTL MERGES analytics.job_log_events")
    try:
        retain(settings.model_copy(update={"audit_mode": True}), tmp_path / "audit")
        deliver(server, old.messages)
        before = int(query(server, lines)[0]["n"])
        result = defs.resolve_job_def("retention_housekeeping").execute_in_process(instance=instance)
        assert int(query(server, lines)[0]["n"]) == before > 0
    finally:
        retain(settings.model_copy(update={"audit_mode": False}), tmp_path / "no-audit")
        execute(server, "SYSTEM START TTL MERGES analytics.job_log_events")
    assert not [e for e in result.all_events if e.is_asset_observation]


def retain(settings: Settings, target) -> None:
    """Apply the settings' log retention to job_log_events, as `analytics migrate` does."""
    run = run_dbt(settings, "run", "--select", "job_log_events", capture=True, target_path=target)
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.usefixtures("built")  # the schema, whichever test runs first
def test_a_backfills_runs_take_the_rebuild_pools_one_slot_in_turn(defs):
    """Up to ten runs of a large backfill at once each waited for the rebuild lock, which gives up
    after 15 minutes: the later ones failed. They wait for the pool's one slot instead."""
    import yaml

    from analytics.dagster_service import INSTANCE_CONFIG
    from orchestration.reconciliation.assets import REBUILD_POOL

    assert defs.resolve_job_def("daily_reconciliation_job").graph.node_defs[0].pool == REBUILD_POOL
    with dg.instance_for_test(overrides=yaml.safe_load(INSTANCE_CONFIG)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_a_backfill_waiting_for_the_rebuild_lock_says_so_in_its_runs_log(server, defs):
    """Dagster captures what the project's own code logs (analytics up writes the instance's settings)."""
    import threading

    import yaml

    from analytics.dagster_service import INSTANCE_CONFIG
    from operations.rebuild_lock import rebuild_lock

    class Waiting(logging.Handler):
        def __init__(self):
            super().__init__()
            self.seen = threading.Event()

        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for the rebuild of" in record.getMessage():
                self.seen.set()

    backfill = defs.resolve_job_def("daily_reconciliation_job")
    waiting = Waiting()
    lock_log = logging.getLogger("operations.rebuild_lock")
    lock_log.addHandler(waiting)
    with dg.instance_for_test(overrides=yaml.safe_load(INSTANCE_CONFIG)) as instance:
        results = []
        try:
            with rebuild_lock(server.settings()):
                run = threading.Thread(
                    target=lambda: results.append(
                        backfill.execute_in_process(instance=instance, partition_key="2026-11-20")
                    )
                )
                run.start()
                assert waiting.seen.wait(120), "the run never reached the lock"
        finally:
            lock_log.removeHandler(waiting)
        run.join(300)
        [result] = results
        assert result.success
        said = [record.user_message for record in instance.all_logs(result.run_id)]
        assert any("waiting for the rebuild of" in message for message in said), said[-20:]
