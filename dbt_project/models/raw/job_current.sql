{#-
  Each job's current state, merged from all of its events whatever their order: the latest
  event (ties broken by lifecycle stage) and every timestamp any event has told. Query it through
  the job_states view, or with -Merge of the state columns and max/min of the others.
-#}
{{ config(
    engine=engine('AggregatingMergeTree'),
    order_by='(user_id, workflow_id, job_id)',
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    argMaxState(cast('' as LowCardinality(String)), tuple(cast(0 as DateTime64(3, 'UTC')), toUInt8(0))) as last_event,
    argMaxState(cast('' as LowCardinality(String)), tuple(cast(0 as DateTime64(3, 'UTC')), toUInt8(0))) as last_status,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_event_time,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as last_event_time,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as scheduled_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as started_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as completed_at,
    cast(0 as SimpleAggregateFunction(sum, UInt64)) as events
group by user_id, workflow_id, job_id
having 0
