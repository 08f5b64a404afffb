{{ materialization_target_table(ref('job_completions')) }}

with incoming as (
    select
        user_id,
        workflow_id,
        job_id,
        event_name as outcome,
        started_at,
        if(event_name = 'cancelled', event_time, assumeNotNull(completed_at)) as ended_at,
        if(event_name = 'cancelled', 0, toUInt64(intDiv(dateDiff('millisecond', started_at, completed_at), 1000)))
            as duration_seconds,
        if(event_name = 'cancelled', 0, dateDiff('millisecond', started_at, completed_at) / 1000) as duration,
        {{ dedup_key('job_end', 'workflow_id', 'job_id') }} as dedup_key
    from {{ ref('job_events') }}
    where event_name in ('completed', 'failed', 'cancelled')
    order by event_time
    limit 1 by dedup_key
)

{% set keys %}select {{ dedup_key('job_end', 'workflow_id', 'job_id') }} from {{ ref('job_events') }}{% endset %}
{{ first_seen('incoming', keys) }}
