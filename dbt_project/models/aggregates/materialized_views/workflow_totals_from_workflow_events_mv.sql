{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from_workflow_events(by_day=false) }}
