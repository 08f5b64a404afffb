{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from('job_completions', by_day=false) }}
