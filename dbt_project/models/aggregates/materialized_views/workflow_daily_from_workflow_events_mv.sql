{{ materialization_target_table(ref('workflow_daily')) }}
{{ counters_from_workflow_events(by_day=true) }}
