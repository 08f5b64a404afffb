{{ materialization_target_table(ref('workflow_daily')) }}
{{ counters_from('workflow_events', by_day=true) }}
