"""The health sensor: runs the pipeline checks on an interval and flags the ones failing."""

import json
import time
from collections.abc import Callable

import dagster as dg

from core.settings.dagster import DagsterSettings

HEALTH_JOB = "pipeline_health"


def build_health_job(check_keys: list[dg.AssetCheckKey]):
    return dg.define_asset_job(
        HEALTH_JOB,
        selection=dg.AssetSelection.checks(*check_keys),
        description="Run the reconciliation and health checks; the run fails when an ERROR check fails.",
    )


def failing_checks(
    instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey], before: set[str]
) -> dict[str, dg.AssetCheckSeverity]:
    """The checks whose latest evaluation failed, as `asset:check` strings, with their severity. A
    check whose latest run planned it but did not evaluate it (still running, or cancelled, or
    failed before it could: ClickHouse down) keeps what it was at the last tick (`before`)."""
    failing = {}
    for key in check_keys:
        name = key.to_user_string()
        record = instance.get_latest_asset_check_evaluation_record(key)
        evaluation = record.evaluation if record is not None else None
        if isinstance(evaluation, dg.AssetCheckEvaluation):
            if not evaluation.passed:
                failing[name] = evaluation.severity
        elif name in before:  # never run, or only planned so far
            failing[name] = dg.AssetCheckSeverity.ERROR
    return failing


IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


# A health run takes tens of seconds, minutes on a loaded machine. One still in progress after this
# long has lost its process (a kill -9 of Dagster leaves its run STARTED for good, and the default
# run launcher cannot tell): the sensor marks it failed and goes on, instead of waiting forever.
ORPHANED_AFTER_SECONDS = 30 * 60


def health_runs_in_progress(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    return list(instance.get_run_records(dg.RunsFilter(job_name=HEALTH_JOB, statuses=IN_PROGRESS), limit=10))


def began(record: dg.RunRecord) -> float:
    """When a run started, or was queued if it never started (seconds since the epoch)."""
    return record.start_time or record.create_timestamp.timestamp()


def fail_orphans(context: dg.SensorEvaluationContext, records: list[dg.RunRecord], now: float) -> int:
    """Mark the runs in progress for longer than ORPHANED_AFTER_SECONDS failed; how many were. A
    queued run has no process to lose: it waits for the run queue (behind a backfill's runs, say),
    however long that takes."""
    orphans = [
        record
        for record in records
        if record.dagster_run.status != dg.DagsterRunStatus.QUEUED and now - began(record) > ORPHANED_AFTER_SECONDS
    ]
    for record in orphans:
        minutes = (now - began(record)) / 60
        message = f"still {record.dagster_run.status.value} after {minutes:.0f} minutes: its process is gone"
        context.instance.report_run_failed(record.dagster_run, message=message)
        context.log.warning(f"{HEALTH_JOB} run {record.dagster_run.run_id} {message}; marked failed")
    return len(orphans)


def build_health_sensor(
    settings: DagsterSettings, job, check_keys: list[dg.AssetCheckKey], clock: Callable[[], float] = time.time
) -> dg.SensorDefinition:
    @dg.sensor(
        name="pipeline_health_sensor",
        job=job,
        minimum_interval_seconds=settings.health_check_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs the pipeline checks every ANALYTICS_HEALTH_CHECK_INTERVAL_SECONDS and flags failures.",
    )
    def pipeline_health_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        # The cursor remembers what was failing at the last tick, so each change is flagged once.
        before = set(json.loads(context.cursor)) if context.cursor else set()
        now = failing_checks(context.instance, check_keys, before)
        for check in sorted(now.keys() - before):
            if now[check] == dg.AssetCheckSeverity.WARN:  # a quiet topic, say: not an error
                context.log.warning(f"check warning: {check}")
            else:
                context.log.error(f"check failing: {check}")
        for check in sorted(before - now.keys()):
            context.log.info(f"check passing again: {check}")
        cursor = json.dumps(sorted(now))
        running = health_runs_in_progress(context.instance)
        if len(running) > fail_orphans(context, running, clock()):
            # Checks take tens of seconds; a tick while they run would start a second set beside them.
            return dg.SensorResult(skip_reason=f"a {HEALTH_JOB} run is still in progress", cursor=cursor)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(tags={"analytics/failing_checks": str(len(now))})], cursor=cursor
        )

    return pipeline_health_sensor
