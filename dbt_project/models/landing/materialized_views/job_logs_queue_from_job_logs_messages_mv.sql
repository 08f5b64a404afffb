{#- Each message of the `job_logs` topic parsed into one landing row, or one row with its parse error. -#}
{{ materialization_target_table(ref('job_logs_queue')) }}
{{ parse_messages('job_logs') }}
