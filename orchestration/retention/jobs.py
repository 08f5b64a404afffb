"""The housekeeping job: apply the log-line TTL now, to every line, and compact the consumer-lag table."""

import dagster as dg

from core import names
from core.names import sql
from orchestration.resources import ClickHouse


def _retention_in_force(clickhouse: ClickHouse) -> tuple[bool, int | None]:
    """Audit mode, and the hours after which job_log_events drops lines, as its TTL says (what the
    last `analytics migrate` applied; hours are None for a TTL set by hand in another form)."""
    [row] = clickhouse.rows(sql("select audit_mode, log_retention_hours from $storage_log_retention"))
    return bool(row["audit_mode"]), row["log_retention_hours"]


def _rows_past_retention(clickhouse: ClickHouse, hours: int) -> int:
    [row] = clickhouse.rows(
        sql("""select count() as n from $job_log_events
           where event_time < now64(3, 'UTC') - toIntervalHour({hours:UInt32})"""),
        {"hours": hours},
    )
    return row["n"]


def _partitions_past_retention(clickhouse: ClickHouse, hours: int) -> list[str]:
    """The day partitions that still hold lines older than the retention: days not wholly expired."""
    rows = clickhouse.rows(
        sql("""select distinct _partition_id as partition from $job_log_events
           where event_time < now64(3, 'UTC') - toIntervalHour({hours:UInt32}) order by partition"""),
        {"hours": hours},
    )
    return [str(row["partition"]) for row in rows]


@dg.op(description="Remove the lines of job_log_events older than the retention in force.")
def expire_job_log_lines(context: dg.OpExecutionContext, clickhouse: dg.ResourceParam[ClickHouse]):
    # The table's own TTL, not this process's settings: a Dagster started without
    # ANALYTICS_AUDIT_MODE must not expire what the database keeps.
    audit_mode, hours = _retention_in_force(clickhouse)
    if audit_mode:
        context.log.info("audit mode: job_log_events keeps every line")
        return
    before = _rows_past_retention(clickhouse, hours) if hours is not None else None
    # The table's TTL drops whole day partitions (ttl_only_drop_parts) but only when merges get to
    # them; MATERIALIZE TTL applies it now and, waited for, leaves the table settled.
    clickhouse.command(sql("alter table $job_log_events materialize ttl"), settings={"mutations_sync": 2})
    if hours is None:
        context.log.info("job_log_events has a TTL set by hand: applied, its lines not counted")
        return
    # A day whose later lines are still kept is not dropped whole: its older lines stayed, up to a
    # day past the retention (a 1-hour retention kept lines for 25). A merge applies the TTL to each
    # line of it; they are the day or two the retention's edge crosses.
    for partition in _partitions_past_retention(clickhouse, hours):
        if not partition.isdigit():  # toYYYYMMDD(event_time): never anything else
            raise ValueError(f"job_log_events has a partition {partition!r} that is not a day")
        clickhouse.command(sql(f"optimize table $job_log_events partition id '{partition}' final"))
    after = _rows_past_retention(clickhouse, hours)
    context.log_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey(names.JOB_LOG_EVENTS),
            metadata={
                "rows_past_retention_before": before,
                "rows_past_retention_after": after,
                "retention_hours": hours,
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
