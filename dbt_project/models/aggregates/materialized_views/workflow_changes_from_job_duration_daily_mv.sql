{#-
  Every insert into job_duration_daily (a finished job's duration, or a rebuilt day's digests)
  also leaves its keys in workflow_changes: this view runs after the digests' part is written,
  so a key announced here has its digests in, and the serving model re-reads the user's
  percentiles with their counters.
-#}
{{ materialization_target_table(ref('workflow_changes')) }}

select distinct
    user_id,
    workflow_id,
    now64(6, 'UTC') as changed_at
from {{ ref('job_duration_daily') }}
