{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from_analytics_events(by_day=false) }}
