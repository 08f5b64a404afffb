{{ materialization_target_table(ref('workflow_daily')) }}
{{ counters_from('analytics_events', by_day=true) }}
