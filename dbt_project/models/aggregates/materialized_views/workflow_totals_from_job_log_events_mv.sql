{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from('job_log_events', by_day=false) }}
