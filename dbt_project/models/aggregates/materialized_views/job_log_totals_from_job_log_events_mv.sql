{{ materialization_target_table(ref('job_log_totals')) }}

select
    user_id,
    workflow_id,
    job_id,
    toUInt64(countIf(is_line)) as lines,
    toUInt64(sum(count)) as entries,
    min(event_time) as first_event_at,
    minIfOrNull(event_time, is_line) as first_line_at,
    maxIfOrNull(event_time, is_line) as last_line_at
from {{ ref('job_log_events') }}
group by user_id, workflow_id, job_id
