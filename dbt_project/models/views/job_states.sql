{#- Each job's current state, finalised from job_current, for ad-hoc SQL. -#}
select
    user_id,
    workflow_id,
    job_id,
    argMaxMerge(last_event) as state,
    argMaxMerge(last_status) as status,
    min(first_event_time) as first_event_time,
    max(last_event_time) as last_event_time,
    max(scheduled_at) as scheduled_at,
    max(started_at) as started_at,
    max(completed_at) as completed_at,
    sum(events) as events
from {{ ref('job_current') }}
group by user_id, workflow_id, job_id
