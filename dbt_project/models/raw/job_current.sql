{#-
  Each job's current state, merged from all of its events whatever their order: the latest
  event (ties broken by lifecycle stage: job_position) and every timestamp any event has told.
  Query it through the job_states view, or with -Merge of the state columns and max/min of the
  others. A table of an earlier version is rebuilt from job_events (macros/job_current.sql).
-#}
-- depends_on: {{ ref('job_events') }}
{{ config(
    engine=engine('AggregatingMergeTree'),
    order_by='(user_id, workflow_id, job_id)',
    post_hook="{{ fill_job_current_from_raw_history(this) }}",
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    argMaxState(cast('' as LowCardinality(String)), toInt64(0)) as last_event,
    argMaxState(cast('' as LowCardinality(String)), toInt64(0)) as last_status,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_event_time,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as last_event_time,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as scheduled_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as started_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as completed_at,
    cast(0 as SimpleAggregateFunction(sum, UInt64)) as events
group by user_id, workflow_id, job_id
having 0
