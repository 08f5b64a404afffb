{{ materialization_target_table(ref('workflow_daily')) }}
{{ counters_from_job_first_seen(by_day=true) }}
