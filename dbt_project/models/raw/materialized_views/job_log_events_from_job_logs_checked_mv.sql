{{ materialization_target_table(ref('job_log_events')) }}

with
accepted as (
    {{ accepted_landing_rows('job_logs') }}
),

-- An event is a line when it carries `message` (an empty one is an empty line); before the
-- message is made non-null below, where ClickHouse would resolve `message` to that alias.
with_line_flag as (
    select
        *,
        message is not null as is_line
    from accepted
),

incoming as (
    select
        assumeNotNull(event_id) as event_id,
        assumeNotNull({{ accepted_timestamp('event_time') }}) as event_time,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        assumeNotNull(job_id) as job_id,
        toUInt64(ifNull({{ number_of('count') }}, 1)) as count,
        ifNull(stream, '') as stream,
        toUInt64({{ number_of('sequence') }}) as sequence,
        ifNull(message, '') as message,
        is_line,
        {{ kafka_position('job_logs') }},
        now64(3, 'UTC') as ingested_at,
        {{ dedup_key('job_logs', 'event_id') }} as dedup_key
    from with_line_flag
    limit 1 by dedup_key
)

{% set keys %}select {{ dedup_key('job_logs', 'event_id') }} from {{ ref('job_logs_checked') }}{% endset %}
{{ first_seen('incoming', keys) }}
