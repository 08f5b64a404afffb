"""Every night, yesterday's aggregates are rebuilt from its raw history."""

import dagster as dg


def build_reconciliation_job(daily_reconciliation: dg.AssetsDefinition):
    return dg.define_asset_job(
        "daily_reconciliation_job",
        selection=[daily_reconciliation.key],
        description="Rebuild the aggregates of the chosen days from the deduplicated raw history.",
    )


def build_reconciliation_schedule(job):
    # The newest partition is yesterday; 01:30 UTC leaves late events of yesterday time to arrive.
    return dg.build_schedule_from_partitioned_job(
        job,
        name="reconcile_previous_day",
        hour_of_day=1,
        minute_of_hour=30,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Rebuild yesterday's aggregates from raw history.",
    )
