"""Housekeeping runs once a day, at a quiet hour."""

import dagster as dg

from orchestration.retention.jobs import retention_housekeeping

retention_housekeeping_daily = dg.ScheduleDefinition(
    name="retention_housekeeping_daily",
    job=retention_housekeeping,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Drop expired raw log lines and compact the consumer-lag table.",
)
