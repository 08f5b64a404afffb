{{ config(materialized='materialized_view', catchup=false) }}
{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from_jobs_first_seen(by_day=false) }}
