{{ materialization_target_table(ref('job_first_seen')) }}

{{ job_first_seen_rows(ref('job_events')) }}
