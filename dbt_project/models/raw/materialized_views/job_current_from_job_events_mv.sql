{{ materialization_target_table(ref('job_current')) }}

{{ job_current_rows(ref('job_events')) }}
