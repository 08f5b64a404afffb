{#-
  One row per finished job: the first completed, failed or cancelled event of each job. Its
  duration (completed_at - started_at in whole seconds; 0 when cancelled, or failed before it
  started) is what the metrics add.
-#}
{{ config(
    engine=engine('ReplacingMergeTree'),
    order_by='(user_id, workflow_id, job_id)',
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast('' as LowCardinality(String)) as outcome,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as started_at,
    cast(0 as DateTime64(3, 'UTC')) as ended_at,
    cast(0 as UInt64) as duration_seconds,
    cast(0 as Float64) as duration,
    toFixedString('', 16) as dedup_key
where 0
