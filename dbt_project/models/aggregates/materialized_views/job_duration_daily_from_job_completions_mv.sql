{{ materialization_target_table(ref('job_duration_daily')) }}

select
    user_id,
    workflow_id,
    toDate(ended_at) as day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(duration) as duration_seconds_quantiles
from {{ ref('job_completions') }}
where {{ has_a_duration() }}
group by all
