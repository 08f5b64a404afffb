{{ materialization_target_table(ref('workflow_daily')) }}
{{ counters_from('job_first_seen', by_day=true) }}
