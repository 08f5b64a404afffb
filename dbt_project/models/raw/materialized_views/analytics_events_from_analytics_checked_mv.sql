{{ materialization_target_table(ref('analytics_events')) }}

with
accepted as (
    {{ accepted_landing_rows('analytics') }}
),

incoming as (
    select
        ifNull(EventKey, '') as event_key,
        assumeNotNull(UserID) as user_id,
        assumeNotNull(WorkflowID) as workflow_id,
        assumeNotNull(EventType) as event_type,
        toJSONString(Data) as data,
        JSONExtractString(data, 'kind') as kind,
        -- each JOBS event is one job; its duration counts in whole seconds, like a native job's
        toUInt64(greatest(floor(JSONExtractFloat(data, 'job_execution_duration')), 0)) as job_execution_seconds,
        JSONExtractFloat(data, 'job_execution_duration') as job_execution_duration,
        toUInt64(greatest(JSONExtractInt(data, 'count'), 0)) as log_count,
        -- the scheduler's events carry no time of their own: Kafka's timestamp, else arrival
        coalesce(_timestamp_ms, now64(3, 'UTC')) as received_at,
        {{ kafka_position('analytics') }},
        {{ analytics_dedup_key() }} as dedup_key
    from accepted
    limit 1 by dedup_key
)

{% set keys %}select {{ analytics_dedup_key() }} from {{ ref('analytics_checked') }}{% endset %}
{{ first_seen('incoming', keys) }}
