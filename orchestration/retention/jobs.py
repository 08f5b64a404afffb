"""The housekeeping job: apply the log-line TTL now and compact the consumer-lag table."""

import dagster as dg

from core import names
from core.names import sql
from core.settings.dagster import DagsterSettings
from orchestration.resources import ClickHouse


def _rows_past_retention(clickhouse: ClickHouse, settings: DagsterSettings) -> int:
    [row] = clickhouse.rows(
        sql("""select count() as n from $job_log_events
           where event_time < now64(3, 'UTC') - toIntervalHour({hours:UInt32})"""),
        {"hours": settings.log_retention_hours},
    )
    return row["n"]


@dg.op(description="Drop the parts of job_log_events whose every line is older than the retention.")
def expire_job_log_lines(
    context: dg.OpExecutionContext,
    clickhouse: dg.ResourceParam[ClickHouse],
    settings: dg.ResourceParam[DagsterSettings],
):
    if settings.audit_mode:
        context.log.info("audit mode: job_log_events keeps every line")
        return
    before = _rows_past_retention(clickhouse, settings)
    # The table's TTL drops whole day partitions (ttl_only_drop_parts) but only when merges get to
    # them; MATERIALIZE TTL applies it now and, waited for, leaves the table settled.
    clickhouse.command(sql("alter table $job_log_events materialize ttl"), settings={"mutations_sync": 2})
    after = _rows_past_retention(clickhouse, settings)
    context.log_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey(names.JOB_LOG_EVENTS),
            metadata={
                "rows_past_retention_before": before,
                # Lines of a day that has not wholly expired stay until its last line does.
                "rows_past_retention_after": after,
                "retention_hours": settings.log_retention_hours,
            },
        )
    )


@dg.op(description="Merge kafka_consumer_lag down to one row per partition.")
def compact_consumer_lag(clickhouse: dg.ResourceParam[ClickHouse]) -> None:
    clickhouse.command(sql("optimize table $kafka_consumer_lag final"))


@dg.job(name="retention_housekeeping", description="Apply retention now: expired log lines, consumer-lag history.")
def retention_housekeeping() -> None:
    expire_job_log_lines()
    compact_consumer_lag()
