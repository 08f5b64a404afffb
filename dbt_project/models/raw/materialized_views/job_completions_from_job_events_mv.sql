{{ materialization_target_table(ref('job_completions')) }}

{{ job_completions_rows(ref('job_events')) }}
