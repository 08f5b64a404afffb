{#-
  Every insert into job_duration_daily (its views' digests and reconciliation's rebuilt ones
  alike) leaves the keys it touched in workflow_changes too: the serving model holds each user's
  duration percentiles and re-reads those of the users it finds there.
-#}
{{ materialization_target_table(ref('workflow_changes')) }}

{{ changed_keys(ref('job_duration_daily')) }}
