{{ materialization_target_table(ref('job_log_totals')) }}

{{ job_log_totals_from(ref('job_log_events')) }}
