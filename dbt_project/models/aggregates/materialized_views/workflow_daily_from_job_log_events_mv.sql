{{ materialization_target_table(ref('workflow_daily')) }}
{{ counters_from('job_log_events', by_day=true) }}
