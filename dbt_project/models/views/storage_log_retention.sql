{#-
  The retention of raw job log lines in force, read from the table itself: hours after which
  lines expire (dbt var log_retention_hours when it was applied), or audit mode (no TTL: every
  line is kept), from the TTL `analytics migrate` sets (or the one of earlier versions,
  `toDateTime(event_time) + toIntervalHour(N)`). log_retention_hours is null when the TTL was set
  by hand in another form; ttl shows it as ClickHouse does.
-#}
select
    name as table,
    position(create_table_query, ' TTL ') = 0 as audit_mode,
    toUInt32OrNull(
        extract(create_table_query, ' TTL toDateTime\\((?:least\\()?event_time\\)? \\+ toIntervalHour\\((\\d+)\\)')
    ) as log_retention_hours,
    extract(create_table_query, ' TTL (.+?)(?: SETTINGS |$)') as ttl
from system.tables
where database = '{{ ref("job_log_events").schema }}' and name = '{{ ref("job_log_events").identifier }}'
