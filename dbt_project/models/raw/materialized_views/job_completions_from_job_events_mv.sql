{{ materialization_target_table(ref('job_completions')) }}
{%- set ends = "event_name in ('completed', 'failed', 'cancelled')" %}

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
    where {{ ends }}
    order by event_time
    limit 1 by dedup_key
)

{#- Only the jobs that end in this block are looked up: a block mostly holds other stages of jobs. -#}
{% set keys %}select {{ dedup_key('job_end', 'workflow_id', 'job_id') }} from {{ ref('job_events') }} where {{ ends }}{% endset %}
{{ first_seen('incoming', keys) }}
