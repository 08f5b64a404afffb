"""daily_reconciliation: materialising a day rebuilds that day's aggregates from raw history."""

import datetime as dt

import dagster as dg

from core import names
from core.settings.dagster import DagsterSettings
from operations.backfill import ClickHouseUnreachable, rebuild_days

# Rebuilds run one at a time (each corrects by "correct minus current"); the pool makes a backfill's
# runs wait for Dagster's slot, where they would queue on the rebuild lock and give up after 15
# minutes (operations/rebuild_lock.py). `analytics up` writes the instance's limit of 1.
REBUILD_POOL = "analytics_rebuild"

# What a rebuild reads: the deduplicated raw history and the aggregates it corrects.
RAW_TABLES = [
    names.WORKFLOW_EVENTS,
    names.JOB_FIRST_SEEN,
    names.JOB_COMPLETIONS,
    names.JOB_LOG_EVENTS,
    names.ANALYTICS_EVENTS,
]
AGGREGATES = [names.WORKFLOW_DAILY, names.JOB_DURATION_DAILY, names.WORKFLOW_TOTALS]

# A ClickHouse out of reach (restarting, say) fails the rebuild with its name; the step is tried
# again after 1, 2 and 4 minutes, since running a rebuild again completes one it stopped. Any other
# failure (a dbt error, the lock held past its wait) would fail again the same way: no retry.
UNREACHABLE_RETRIES = 3
UNREACHABLE_FIRST_WAIT_S = 60.0


def build_daily_reconciliation(
    partitions: dg.PartitionsDefinition, unreachable_first_wait_s: float = UNREACHABLE_FIRST_WAIT_S
) -> dg.AssetsDefinition:
    @dg.asset(
        name="daily_reconciliation",
        group_name="aggregates",
        partitions_def=partitions,
        deps=[dg.AssetKey(name) for name in RAW_TABLES + AGGREGATES],
        # A backfill of many days runs as a few runs of up to a month each, not one run per day.
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=31),
        pool=REBUILD_POOL,
        kinds={"dbt", "clickhouse"},
        description=(
            "Materialising a day rebuilds its workflow_daily and job_duration_daily rows from the "
            "deduplicated raw history (through staging tables): delta rows for the counters that were "
            "off, in workflow_daily and workflow_totals, and the day's duration digests replaced. Safe "
            "to repeat. The same as `analytics backfill --day YYYY-MM-DD`. A backfill rebuilds up to 31 days in "
            "one run, and each of its days shows the run's metadata: `days` has each day's workflow_daily rows, "
            "the corrected counts are the whole run's. With ClickHouse out of reach it is tried again "
            f"{UNREACHABLE_RETRIES} times, after 1, 2 and 4 minutes."
        ),
    )
    def daily_reconciliation(
        context: dg.AssetExecutionContext, settings: dg.ResourceParam[DagsterSettings]
    ) -> dg.MaterializeResult:
        days = [dt.date.fromisoformat(key) for key in context.partition_keys]
        try:
            summary = rebuild_days(settings, days)
        except ClickHouseUnreachable as error:
            wait_s = unreachable_first_wait_s * 2**context.retry_number
            if context.retry_number < UNREACHABLE_RETRIES:
                context.log.warning(f"{error}; trying again in {wait_s:.0f} s")
            raise dg.RetryRequested(max_retries=UNREACHABLE_RETRIES, seconds_to_wait=wait_s) from error
        context.log.info(summary.output)
        return dg.MaterializeResult(
            metadata={
                "days": dg.MetadataValue.json(summary.rows_by_day),
                "workflow_daily_rows": sum(summary.rows_by_day.values()),
                "workflow_totals_corrected": summary.workflow_totals_corrected,
                "workflow_daily_corrected": summary.workflow_daily_corrected,
                "job_log_totals_corrected": summary.job_log_totals_corrected,
            }
        )

    return daily_reconciliation
