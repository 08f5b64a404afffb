"""The Dagster code location loads with no secrets and no server, and its shape is snapshotted.

A changed asset or check key breaks bookmarks, run history and alerts in the UI, so it must be a
decision: update tests/snapshots/dagster_definitions.txt in the same commit.
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from analytics.cli import main
from core.settings.composed import Settings
from core.settings.dagster import DagsterSettings
from operations import dbt as migrate
from operations.backfill import BackfillFailed, parse_summary, rebuild_arguments
from orchestration.health.checks import PartitionLag, lags_from_rdkafka_stat
from orchestration.schema.assets import (
    FAILED_RUNS_KEPT,
    LEFT_BY_A_KILLED_RUN_SECONDS,
    dbt_build_args,
    keep_failed_run,
    model_group,
)
from orchestration.schema.resources import ManifestError, adopt_manifest, dbt_resource, prepare_manifest

pytestmark = pytest.mark.long_file(26)  # seconds of a worker, measured: run first (tests/scheduling.py)

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "tests" / "snapshots" / "dagster_definitions.txt"


def environment_without_settings() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("ANALYTICS_")}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The definitions as Dagster loads them with no ANALYTICS_* variable (so no secret) set."""
    fresh_clone = tmp_path_factory.mktemp("fresh")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("ANALYTICS_"):
                patch.delenv(name)
        patch.chdir(fresh_clone)  # DATA_DIR defaults to ./.analytics: a first load, nothing prepared
        import orchestration

        yield orchestration.defs(), fresh_clone


def describe(defs: dg.Definitions) -> str:
    graph = defs.resolve_asset_graph()
    sections = {
        "assets": sorted(key.to_user_string() for key in graph.get_all_asset_keys()),
        "asset checks": sorted(key.to_user_string() for key in graph.asset_check_keys),
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")),
        "schedules": sorted(schedule.name for schedule in defs.schedules),
        "sensors": sorted(sensor.name for sensor in defs.sensors),
    }
    return "".join(f"[{title}]\n" + "".join(f"{name}\n" for name in names) for title, names in sections.items())


def test_definitions_load_without_secrets_and_match_the_snapshot(loaded):
    defs, fresh_clone = loaded
    assert describe(defs) == SNAPSHOT.read_text(), (
        f"the Dagster definitions changed; if that is intended, write this to {SNAPSHOT}:\n{describe(defs)}"
    )
    # dbt's files went under the data directory, none into the repository.
    assert (fresh_clone / ".analytics" / "dbt" / "dagster" / "manifest" / "manifest.json").exists()
    assert not (REPO / "target").exists()


def test_groups_follow_the_model_folders(loaded):
    graph = loaded[0].resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups["workflows_queue"] == "landing"
    assert groups["workflow_events"] == "raw"
    assert groups["workflow_daily"] == "aggregates"
    assert groups["daily_reconciliation"] == "aggregates"
    assert groups["user_totals"] == "views"
    assert set(groups.values()) == {"landing", "raw", "aggregates", "views"}


def test_the_nightly_schedule_reconciles_the_day_before(loaded):
    import datetime as dt

    schedule = loaded[0].resolve_schedule_def("reconcile_previous_day")
    tick = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 24, 1, 30, tzinfo=dt.UTC))
    [request] = schedule.evaluate_tick(tick).run_requests
    assert (request.job_name, request.partition_key) == ("daily_reconciliation_job", "2026-11-23")
    housekeeping = loaded[0].resolve_schedule_def("retention_housekeeping_daily")
    assert (housekeeping.job_name, housekeeping.cron_schedule) == ("retention_housekeeping", "0 3 * * *")


@pytest.mark.slow
def test_dagster_validates_the_code_location(loaded):
    # In the directory the module's first load prepared: loading on a fresh checkout (dbt parses
    # the project) is what `loaded` did; here Dagster's own tool loads it again and takes that parse.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-m", "orchestration"],
        cwd=loaded[1],
        env=environment_without_settings(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Validation successful for code location orchestration" in result.stdout + result.stderr


def test_importing_the_code_location_reads_no_settings():
    # An invalid setting breaks loading the definitions, but not importing the package.
    environment = {**environment_without_settings(), "ANALYTICS_CLICKHOUSE_HTTP_PORT": "not-a-port"}
    script = """
import orchestration
try:
    orchestration.defs()
except Exception as error:
    print(type(error).__name__)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ValidationError"


def test_a_project_dbt_cannot_parse_is_a_clear_error(monkeypatch, tmp_path):
    broken = tmp_path / "project"
    shutil.copytree(REPO / "dbt_project", broken / "dbt_project")
    shutil.copy(REPO / "dbt_project.yml", broken)
    shutil.copy(REPO / "profiles.yml", broken)
    (broken / "dbt_project" / "models" / "raw" / "broken.sql").write_text("select {{ unclosed\n")
    monkeypatch.setattr(migrate, "PROJECT_ROOT", broken)
    with pytest.raises(ManifestError, match="dbt parse failed"):
        prepare_manifest(Settings(data_dir=tmp_path / "data"))


def built(tmp_path: Path, stamp: str | None, manifest: str = '{"nodes": {}}') -> Path:
    """A target directory as `dbt build` leaves it, stamped by migrate when ``stamp`` is given."""
    source = tmp_path / "target"
    source.mkdir()
    (source / "manifest.json").write_text(manifest)
    (source / "partial_parse.msgpack").write_bytes(b"state")
    if stamp is not None:
        (source / "fingerprint").write_text(stamp)
    (tmp_path / "manifest").mkdir()
    return source


def test_a_built_manifest_with_the_same_fingerprint_is_taken_with_its_parse_state(tmp_path):
    source = built(tmp_path, "abc")
    assert adopt_manifest(source, tmp_path / "manifest", "abc")
    assert json.loads((tmp_path / "manifest" / "manifest.json").read_text()) == {"nodes": {}}
    assert (tmp_path / "manifest" / "partial_parse.msgpack").read_bytes() == b"state"


@pytest.mark.parametrize(
    ("stamp", "manifest"),
    [("abc", '{"nodes": {}}'), (None, '{"nodes": {}}'), ("xyz", '{"nodes": {"torn'), ("xyz", "")],
    ids=["other project or vars", "build did not pass", "torn", "empty"],
)
def test_a_built_manifest_is_refused_unless_stamped_with_this_fingerprint_and_whole(tmp_path, stamp, manifest):
    source = built(tmp_path, stamp, manifest)
    assert not adopt_manifest(source, tmp_path / "manifest", "xyz")
    assert list((tmp_path / "manifest").iterdir()) == []  # nothing half-taken


def test_migrate_stamps_only_a_build_that_passed(monkeypatch, tmp_path):
    from operations import migrate as migrate_module

    settings = Settings(data_dir=tmp_path / "data")
    target = migrate.default_target_path(settings)
    target.mkdir(parents=True)
    (target / "fingerprint").write_text("stale")
    outcomes = iter([1, 0])
    monkeypatch.setattr(
        migrate_module, "run_dbt", lambda *args, **kwargs: subprocess.CompletedProcess([], next(outcomes))
    )
    migrate_module.migrate(settings)
    assert not (target / "fingerprint").exists()  # a failed build takes the old stamp away
    migrate_module.migrate(settings)
    assert (target / "fingerprint").read_text() == migrate.project_fingerprint(settings)


def test_a_dbt_run_with_other_vars_takes_the_stamp_away_and_one_with_the_same_keeps_it(monkeypatch, tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    stamp = migrate.default_target_path(settings) / "fingerprint"
    stamp.parent.mkdir(parents=True)
    stamped_when_dbt_ran = []
    monkeypatch.setattr(
        migrate.subprocess,
        "run",
        lambda *args, **kwargs: stamped_when_dbt_ran.append(stamp.exists()) or subprocess.CompletedProcess([], 0),
    )
    stamp.write_text(migrate.project_fingerprint(settings))
    migrate.run_dbt(settings, "run-operation", "rebuild_days")  # the same project and vars: still its manifest
    assert stamp.exists()
    migrate.run_dbt(settings.model_copy(update={"audit_mode": True}), "run", "--select", "job_log_events")
    assert not stamp.exists()  # gone before dbt rewrote the manifest with other vars
    stamp.write_text(migrate.project_fingerprint(settings))
    migrate.run_dbt(settings, "parse", target_path=tmp_path / "elsewhere")  # another target: not this stamp's
    assert stamped_when_dbt_ran == [True, False, True]


def results(tmp_path: Path, *nodes: tuple[str, str]) -> Path:
    """A target directory whose run_results.json has these (unique_id, status) nodes."""
    listed = [{"unique_id": unique_id, "status": status} for unique_id, status in nodes]
    (tmp_path / "run_results.json").write_text(json.dumps({"results": listed}))
    return tmp_path


def test_data_failing_tests_is_told_apart_from_a_schema_that_did_not_build(tmp_path):
    from operations.migrate import failing_data_tests

    built = ("model.analytics.workflow_daily", "success")
    held_back = ("model.analytics.user_totals", "skipped")
    failed = ("test.analytics.workflow_daily_matches_raw_history", "fail")
    generic = ("test.analytics.unique_user_totals_user_id.5f3a9c", "fail")
    assert failing_data_tests(results(tmp_path, built, failed, held_back, generic)) == [
        "workflow_daily_matches_raw_history",
        "unique_user_totals_user_id",
    ]
    assert failing_data_tests(results(tmp_path, built, ("test.analytics.x", "pass"))) is None  # nothing failed
    errors = [("model.analytics.job_events", "error"), ("test.analytics.x", "error"), ("seed.analytics.s", "error")]
    for broken in errors:
        assert failing_data_tests(results(tmp_path, failed, broken)) is None, broken
    (tmp_path / "run_results.json").unlink()
    assert failing_data_tests(tmp_path) is None  # dbt stopped before running anything


def test_models_are_grouped_by_their_folder():
    assert model_group({"resource_type": "model", "fqn": ["analytics", "raw", "job_events"]}) == "raw"
    assert model_group({"resource_type": "test", "fqn": ["analytics", "workflow_daily_matches"]}) is None


def test_failed_runs_are_kept_up_to_a_number_and_runs_a_kill_left_for_a_day(tmp_path):
    runs = tmp_path / "runs"
    failed = []
    for number in range(FAILED_RUNS_KEPT + 3):
        run = runs / f"failed-{number:02}"
        run.mkdir(parents=True)
        keep_failed_run(run)
        os.utime(run / "FAILED", (number, number))  # in the order they failed
        failed.append(run)
    running = runs / "running"
    abandoned = runs / "abandoned"
    running.mkdir()
    abandoned.mkdir()
    now = 10_000_000.0
    os.utime(running, (now - 60, now - 60))
    os.utime(abandoned, (now - LEFT_BY_A_KILLED_RUN_SECONDS - 60,) * 2)

    newest = runs / "newest"
    newest.mkdir()
    keep_failed_run(newest, now=now)

    left = sorted(path.name for path in runs.iterdir())
    # The newest failed runs, this one among them, and the run still in progress.
    assert left == sorted([run.name for run in failed[-(FAILED_RUNS_KEPT - 1) :]] + ["newest", "running"])


@pytest.mark.parametrize(
    ("given", "retention"), [({"audit_mode": True}, (True, None)), ({"log_retention_hours": 48}, (None, 48))]
)
def test_dbt_build_gets_this_deployments_vars(given, retention):
    args = dbt_build_args(Settings(**given, dbt_target="server"))
    assert args[:2] == ["build", "--vars"]
    passed = json.loads(args[2])
    assert (passed["audit_mode"], passed["log_retention_hours"], passed["ingest"]) == (*retention, "kafka")


def test_rebuild_arguments_name_each_day_once_in_order():
    import datetime as dt

    days = [dt.date(2026, 11, 21), dt.date(2026, 11, 20), dt.date(2026, 11, 21)]
    operation, flag, arguments = rebuild_arguments(days, "abc123")
    assert (operation, flag) == ("rebuild_days", "--args")
    assert json.loads(arguments) == {"days": ["2026-11-20", "2026-11-21"], "staging_suffix": "abc123"}
    with pytest.raises(ValueError, match="at least one day"):
        rebuild_arguments([], "abc123")


def test_the_rebuild_summary_is_read_from_dbts_output():
    summary = (
        '{"days": {"2026-11-20": 42}, "workflow_totals_corrected": 3, "workflow_daily_corrected": 4, '
        '"job_log_totals_corrected": 2}'
    )
    assert parse_summary(f"\x1b[0m09:00:01  rebuild summary: {summary}\n") == ({"2026-11-20": 42}, 3, 4, 2)
    with pytest.raises(BackfillFailed, match="no rebuild summary"):
        parse_summary("09:00:01  Done.\n")


@pytest.mark.parametrize(
    ("day", "said"),
    [
        ("2026-02-30", "'2026-02-30' is not a day on the calendar: day is out of range for month"),
        ("2026-13-01", "'2026-13-01' is not a day on the calendar: month must be in 1..12"),
        ("20261120", "'20261120' is not a day written YYYY-MM-DD"),
        ("yesterday", "'yesterday' is not a day written YYYY-MM-DD"),
    ],
)
def test_backfill_refuses_a_day_that_is_not_a_date_saying_why(day, said):
    result = CliRunner().invoke(main, ["backfill", "--day", day])
    assert result.exit_code == 2
    assert f"Invalid value for '--day': {said}" in result.output


@pytest.mark.parametrize("day", ["1969-12-31", "2149-06-07", "2250-01-01"])
def test_backfill_refuses_a_day_the_aggregates_cannot_hold_before_dbt_runs(day, refused_port):
    # Its Date would wrap around onto another day; the ClickHouse given is never reached.
    url = f"http://127.0.0.1:{refused_port}"
    result = CliRunner().invoke(main, ["backfill", "--day", "2026-11-20", "--day", day, "--clickhouse-url", url])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--day': {day}: not one of the days the aggregates hold" in result.output
    assert "(1970-01-01 to 2149-06-06)" in result.output


@pytest.mark.parametrize(
    ("day", "said"),
    [
        # ClickHouse read it as 2026-12-01, which was rebuilt and reported as "2026-11-31"
        ("2026-11-31", "not a day on the calendar: 2026-11-31"),
        # read as 1970-01-01
        ("1900-01-01", "1900-01-01: not one of the days the aggregates hold (1970-01-01 to 2149-06-06)"),
    ],
)
def test_rebuild_days_given_to_dbt_by_hand_refuses_a_day_backfill_refuses(analytics_db, day, said):
    arguments = json.dumps({"days": ["2026-11-20", day], "staging_suffix": "byhand"})
    result = migrate.run_dbt(
        analytics_db.settings(), "run-operation", "rebuild_days", "--args", arguments, capture=True
    )
    assert result.returncode != 0
    assert said in result.stdout
    assert "rebuild summary" not in result.stdout


def test_consumer_lag_is_read_from_librdkafka_statistics():
    stat = {
        "topics": {
            "jobs": {
                "partitions": {
                    "0": {"consumer_lag": 12},
                    "1": {"consumer_lag": -1},  # not known yet
                    "-1": {"consumer_lag": 99},  # librdkafka's internal partition
                }
            },
            "workflows": {"partitions": {"2": {"consumer_lag": 0}}},
        }
    }
    assert lags_from_rdkafka_stat("analytics.jobs_queue", json.dumps(stat)) == [
        PartitionLag("analytics.jobs_queue", "jobs", 0, 12),
        PartitionLag("analytics.jobs_queue", "workflows", 2, 0),
    ]
    assert lags_from_rdkafka_stat("analytics.jobs_queue", "") == []


def test_settings_survive_the_trip_through_a_child_environment(monkeypatch, tmp_path):
    settings = Settings(
        data_dir=tmp_path, clickhouse_password="s3cret", dagster_port=3999, audit_mode=True, kafka_bootstrap="h:1"
    )
    for name in list(os.environ):
        if name.startswith("ANALYTICS_"):
            monkeypatch.delenv(name)
    for name, value in settings.as_environment().items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


def test_the_dbt_resource_knows_its_dbts_version_without_starting_dbt(monkeypatch, tmp_path):
    import dagster_dbt.core.resource
    from packaging import version

    def no_process(command, *args, **kwargs):
        raise AssertionError(f"started {command}")

    # dagster-dbt would run `dbt --version` (about 6 CPU-seconds) in every run; this dbt is the environment's own.
    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_process)
    resource = dbt_resource(DagsterSettings())
    assert resource.dbt_executable == str(Path(sys.executable).with_name("dbt"))
    assert resource._cli_version == version.parse(importlib.metadata.version("dbt-core"))
    # A wrapper that runs this environment's dbt-core (the suite's forked dbt, say) is run instead.
    program = tmp_path / "dbt-wrapper"
    program.write_text('#!/bin/sh\nexec dbt "$@"\n')
    program.chmod(0o755)
    wrapper = dbt_resource(DagsterSettings(dbt_executable=program))
    assert wrapper.dbt_executable == str(program)
    assert wrapper._cli_version == resource._cli_version


def test_a_failing_checks_advice_names_only_partitions_that_exist():
    """It said to materialise partitions of daily_reconciliation for days before its first one, or
    for today, which no partition holds; only the backfill command works for those."""
    import datetime as dt

    from orchestration.reconciliation.failing_rows import describe

    first, today = dt.date(2025, 1, 1), dt.date(2026, 12, 7)
    found = [("u", "w", "2026-12-01"), ("u", "w", "2024-12-31"), ("u", "w", "2026-12-07")]
    keys = ["user_id", "workflow_id", "day"]
    advice = describe(keys, found, first, today)
    assert "materialise the partitions 2026-12-01 of daily_reconciliation" in advice
    assert "`analytics backfill --day 2024-12-31 --day 2026-12-01 --day 2026-12-07`" in advice
    outside = describe(keys, found[1:], first, today)
    assert "materialise" not in outside and "no partition of daily_reconciliation holds them" in outside
    assert "materialise those partitions" in describe(keys, found[:1], first, today)


def test_totals_off_the_sum_of_their_days_are_not_said_to_be_off_their_raw_history(clickhouse, tmp_path):
    """workflow_totals_add_up_to_daily compares the totals with workflow_daily: its failure said
    "Off their raw history", sending the reader to a comparison it never made."""
    import datetime as dt

    from orchestration.reconciliation.failing_rows import named
    from orchestration.resources import ClickHouse

    compiled = tmp_path / "compiled" / "analytics" / "tests"
    compiled.mkdir(parents=True)
    row = "SELECT 'u' AS user_id, 'w' AS workflow_id, 12 AS {}_jobs, 9 AS {}_jobs"
    (compiled / "workflow_totals_add_up_to_daily.sql").write_text(row.format("totals", "days"))
    (compiled / "workflow_totals_match_raw_history.sql").write_text(row.format("stored", "rebuilt"))
    resource, first = ClickHouse(clickhouse.settings()), dt.date(2025, 1, 1)

    def said(check_name: str) -> str:
        failed = dg.AssetCheckResult(asset_key=dg.AssetKey("workflow_totals"), check_name=check_name, passed=False)
        return named(failed, tmp_path, resource, first).description

    assert said("workflow_totals_add_up_to_daily") == (
        "Off the sum of their workflow_daily rows: u/w (jobs 12 in workflow_totals, 9 in sum of workflow_daily (+3)). "
        "Rebuilding a day each has events on repairs it."
    )
    assert said("workflow_totals_match_raw_history").startswith(
        "Off their raw history: u/w (jobs 12 in workflow_totals, 9 in raw history (+3))"
    )


def test_a_failing_reconciliation_row_says_by_how_much_each_counter_is_off():
    from orchestration.reconciliation.failing_rows import off_by

    daily = {"user_id": "u", "day": "2026-12-01", "stored_kind": "BATCH", "rebuilt_kind": "BATCH"}
    daily |= {"stored_jobs": 12, "rebuilt_jobs": 6, "stored_joblogs": 3, "rebuilt_joblogs": 5}
    daily |= {"stored_jobs_failed": 1, "rebuilt_jobs_failed": 1}
    said = off_by("workflow_daily_matches_raw_history", daily)
    jobs = "jobs 12 in workflow_daily, 6 in raw history (+6)"
    joblogs = "joblogs 3 in workflow_daily, 5 in raw history (-2)"
    assert said == f"{jobs}; {joblogs}"
    sums = {"totals_jobs": 4, "days_jobs": 2, "totals_joblogs": 0, "days_joblogs": 0}
    said = off_by("workflow_totals_add_up_to_daily", sums)
    assert said == "jobs 4 in workflow_totals, 2 in sum of workflow_daily (+2)"
    logs = {"counted_lines": 1, "stored_lines": 1, "counted_entries": 0, "stored_entries": 7}
    assert off_by("job_log_totals_match_raw_history", logs) == "entries 0 in job_log_totals, 7 in raw history (-7)"


def test_a_reconciliation_run_with_clickhouse_out_of_reach_names_it_and_is_tried_again(refused_port, tmp_path):
    """It failed at once with clickhouse-connect's "Max retries exceeded with url" and was not tried again."""
    import datetime as dt

    from operations.backfill import ClickHouseUnreachable, rebuild_days
    from orchestration.reconciliation.assets import UNREACHABLE_RETRIES, build_daily_reconciliation
    from orchestration.reconciliation.partitions import daily_partitions

    settings = Settings(clickhouse_http_port=refused_port, data_dir=tmp_path)
    named = f"cannot reach ClickHouse at http://127.0.0.1:{refused_port}: "
    with pytest.raises(ClickHouseUnreachable, match=named + ".*Connection refused.*run again"):
        rebuild_days(settings, [dt.date(2026, 11, 20)])

    asset = build_daily_reconciliation(daily_partitions(settings), unreachable_first_wait_s=0)
    with dg.instance_for_test() as instance:
        resources = {"settings": settings}
        result = dg.materialize(
            [asset], partition_key="2026-11-20", resources=resources, instance=instance, raise_on_error=False
        )
    assert not result.success
    retries = [event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == UNREACHABLE_RETRIES
    [failure] = result.get_step_failure_events()
    assert named in failure.step_failure_data.error.cause.message


def test_health_checks_with_clickhouse_out_of_reach_fail_naming_it(refused_port, tmp_path):
    """Each failed with clickhouse-connect's "Max retries exceeded with url: /?query_id=..." and a stack trace."""
    from orchestration.health.checks import HEALTH_CHECKS
    from orchestration.resources import ClickHouse

    settings = Settings(clickhouse_http_port=refused_port, data_dir=tmp_path)
    keys = [key for checks in HEALTH_CHECKS for key in checks.check_keys]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            HEALTH_CHECKS,
            selection=dg.AssetSelection.checks(*keys),
            resources={"settings": settings, "clickhouse": ClickHouse(settings)},
            instance=instance,
            raise_on_error=False,
        )
    failures = result.get_step_failure_events()
    assert len(failures) == len(HEALTH_CHECKS)
    for failure in failures:
        error = failure.step_failure_data.error
        said = f"cannot reach ClickHouse at http://127.0.0.1:{refused_port}: [Errno 111] Connection refused"
        assert said in error.message and error.cause is None, (failure.step_key, error.message)


def test_the_dbt_tests_of_a_health_run_with_clickhouse_out_of_reach_fail_naming_it(refused_port, tmp_path):
    """dbt's step said "The dbt CLI process with command `...` failed", ClickHouse named only in dbt's output."""
    from orchestration.definitions import build_definitions

    settings = Settings(clickhouse_http_port=refused_port, data_dir=tmp_path)
    health = build_definitions(settings).resolve_job_def("pipeline_health")
    with dg.instance_for_test() as instance:
        result = health.execute_in_process(instance=instance, raise_on_error=False)
    [dbt_step] = [failure for failure in result.get_step_failure_events() if failure.step_key == "analytics_dbt"]
    said = f"cannot reach ClickHouse at http://127.0.0.1:{refused_port}: [Errno 111] Connection refused"
    assert said in dbt_step.step_failure_data.error.message
    assert "Max retries exceeded" in dbt_step.step_failure_data.user_failure_data.metadata["dbt"].value
