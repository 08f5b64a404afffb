{#-
  The `analytics` topic: the scheduler's pre-aggregated events, one row per EventKey. The sorting
  key leaves out received_at: it is the time of the insert, so the same event sent twice at once
  (two inserts past the first-seen gate together) would keep two rows through FINAL.
-#}
{{ config(
    engine=engine('ReplacingMergeTree'),
    order_by='(user_id, workflow_id, dedup_key)',
    partition_by='toYYYYMM(received_at)',
) }}

select
    cast('' as String) as event_key,
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as LowCardinality(String)) as event_type,
    cast('' as LowCardinality(String)) as kind,
    cast(0 as UInt64) as job_execution_seconds,
    cast(0 as Float64) as job_execution_duration,
    cast(0 as UInt64) as log_count,
    cast('' as String) as data,
    cast(0 as DateTime64(3, 'UTC')) as received_at,
    {{ kafka_position_columns() }},
    toFixedString('', 16) as dedup_key
where 0
