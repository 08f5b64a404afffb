{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from('job_first_seen', by_day=false) }}
