"""Days of event time (UTC): the unit a backfill rebuilds."""

import dagster as dg

from analytics.settings import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    # The newest partition is yesterday: today is still receiving events, and a rebuild would
    # race them.
    return dg.DailyPartitionsDefinition(start_date=settings.backfill_start_date.isoformat(), timezone="UTC")
