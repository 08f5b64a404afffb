{#-
  Every insert into job_duration_daily (its views' digests and reconciliation's rebuilt ones
  alike) leaves the keys it touched in workflow_changes too: the serving model holds each user's
  duration percentiles and re-reads those of the users it finds there.
-#}
{{ materialization_target_table(ref('workflow_changes')) }}

select distinct
    user_id,
    workflow_id,
    now64(6, 'UTC') as changed_at
from {{ ref('job_duration_daily') }}
