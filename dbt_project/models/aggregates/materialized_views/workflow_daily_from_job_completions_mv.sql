{{ materialization_target_table(ref('workflow_daily')) }}
{{ counters_from('job_completions', by_day=true) }}
