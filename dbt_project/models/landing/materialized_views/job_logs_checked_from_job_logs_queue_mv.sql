{#- Each landing row of `job_logs` with its verdict: the contract is evaluated here once per block. -#}
{{ materialization_target_table(ref('job_logs_checked')) }}
{{ checked_landing_rows('job_logs') }}
