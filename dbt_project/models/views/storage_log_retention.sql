{#-
  The retention of raw job log lines in force, read from the table itself: hours after which
  lines expire (dbt var log_retention_hours when it was applied), or audit mode (no TTL: every
  line is kept), from the TTL `analytics migrate` sets (or the one of earlier versions,
  `toDateTime(event_time) + toIntervalHour(N)`). log_retention_hours is null when the TTL was set
  by hand in another form; ttl shows it as ClickHouse does. Every line logged since
  lines_complete_since is still stored: under each retention recorded in log_retention_history,
  lines logged more than its hours before it gave way to the next may have expired.
-#}
{%- set epoch = "toDateTime64('1970-01-01 00:00:00', 3, 'UTC')" %}
select
    name as table,
    position(create_table_query, ' TTL ') = 0 as audit_mode,
    toUInt32OrNull({{ ttl_hours('create_table_query') }}) as log_retention_hours,
    extract(create_table_query, ' TTL (.+?)(?: SETTINGS |$)') as ttl,
    (
        select
            greatest(
                ifNull(max(periods.until - toIntervalHour(periods.log_retention_hours)), {{ epoch }}), {{ epoch }}
            )
        from (
            select
                log_retention_hours,
                leadInFrame(applied_at, 1, now64(3, 'UTC')) over (
                    order by applied_at rows between unbounded preceding and unbounded following
                ) as until
            from {{ ref('log_retention_history') }}
        ) as periods
        where periods.log_retention_hours is not null
    ) as lines_complete_since
from system.tables
where database = '{{ ref("job_log_events").schema }}' and name = '{{ ref("job_log_events").identifier }}'
