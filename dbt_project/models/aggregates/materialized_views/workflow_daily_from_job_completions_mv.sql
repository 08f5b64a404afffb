{{ materialization_target_table(ref('workflow_daily')) }}
{{ counters_from_job_completions(by_day=true) }}
