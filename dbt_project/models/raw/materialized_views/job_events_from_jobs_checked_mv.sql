{{ materialization_target_table(ref('job_events')) }}

with
accepted as (
    {{ accepted_landing_rows('jobs') }}
),

incoming as (
    select
        assumeNotNull(event_id) as event_id,
        assumeNotNull({{ accepted_timestamp('event_time') }}) as event_time,
        assumeNotNull(event_name) as event_name,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        assumeNotNull(job_id) as job_id,
        {{ normalized_job_status('assumeNotNull(status)') }} as status,
        {{ accepted_timestamp('scheduled_at') }} as scheduled_at,
        {{ accepted_timestamp('started_at') }} as started_at,
        {{ accepted_timestamp('completed_at') }} as completed_at,
        {{ kafka_position('jobs') }},
        now64(3, 'UTC') as ingested_at,
        {{ dedup_key('jobs', 'event_id') }} as dedup_key
    from accepted
    limit 1 by dedup_key
)

{% set keys %}select {{ dedup_key('jobs', 'event_id') }} from {{ ref('jobs_checked') }}{% endset %}
{{ first_seen('incoming', keys) }}
