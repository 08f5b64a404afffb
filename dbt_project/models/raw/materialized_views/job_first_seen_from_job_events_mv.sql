{{ materialization_target_table(ref('job_first_seen')) }}

with incoming as (
    select
        user_id,
        workflow_id,
        job_id,
        min(event_time) as first_event_time,
        {{ dedup_key('job', 'workflow_id', 'job_id') }} as dedup_key
    from {{ ref('job_events') }}
    group by user_id, workflow_id, job_id
)

{% set keys %}select {{ dedup_key('job', 'workflow_id', 'job_id') }} from {{ ref('job_events') }}{% endset %}
{{ first_seen('incoming', keys) }}
