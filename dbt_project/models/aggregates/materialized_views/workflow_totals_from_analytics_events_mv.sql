{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from('analytics_events', by_day=false) }}
