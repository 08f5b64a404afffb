{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from('workflow_events', by_day=false) }}
