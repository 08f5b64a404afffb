{#-
  Each log retention applied to job_log_events, from when (macros/retention.sql): hours, or null
  for audit mode (no TTL). Lines expire under the retention in force while they age, so which
  lines may be gone depends on every retention since, not only on today's: a shorter one applied
  once has removed lines that today's longer one would keep (storage_log_retention's
  lines_complete_since reads it). A database older than this table gets one row for the TTL its
  table had, from 1970.
-#}
{{ config(
    engine=engine('MergeTree'),
    order_by='applied_at',
) }}

select
    now64(3, 'UTC') as applied_at,
    cast(null as Nullable(UInt32)) as log_retention_hours
where 0
