"""Days of event time (UTC): the unit a backfill rebuilds."""

import dagster as dg

from core.settings.dagster import DagsterSettings


def daily_partitions(settings: DagsterSettings) -> dg.DailyPartitionsDefinition:
    # The newest partition is yesterday: today is still receiving events, and a rebuild would
    # race them.
    return dg.DailyPartitionsDefinition(start_date=settings.backfill_start_date.isoformat(), timezone="UTC")
