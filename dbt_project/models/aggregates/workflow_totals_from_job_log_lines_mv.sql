{{ config(materialized='materialized_view', catchup=false) }}
{{ materialization_target_table(ref('workflow_totals')) }}
{{ counters_from_job_log_lines(by_day=false) }}
