{{ materialization_target_table(ref('job_duration_daily')) }}

select
    user_id,
    workflow_id,
    toDate(received_at) as day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(job_execution_duration) as duration_seconds_quantiles
from {{ ref('analytics_events') }}
where event_type = 'JOBS'
group by all
