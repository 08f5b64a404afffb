{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from_job_first_seen(by_day=false) }}
