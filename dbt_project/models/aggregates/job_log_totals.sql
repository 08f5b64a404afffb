{#-
  Per job, what its log events added up to, kept after the lines themselves expire: `lines`
  (events that carried a line), `entries` (the sum of `count`, as total_joblogs counts them),
  when its first log event was logged and when its first and last lines were. A job's lines were
  removed by retention when `lines` exceeds the lines job_log_events still holds for it. Sum the
  counters over a key's rows.
-#}
{{ config(
    engine=engine('AggregatingMergeTree'),
    order_by='(user_id, workflow_id, job_id)',
    settings=aggregate_settings(),
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast(0 as SimpleAggregateFunction(sum, UInt64)) as lines,
    cast(0 as SimpleAggregateFunction(sum, UInt64)) as entries,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_event_at,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_line_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as last_line_at
where 0
