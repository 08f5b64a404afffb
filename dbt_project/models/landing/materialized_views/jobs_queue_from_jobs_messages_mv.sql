{#- Each message of the `jobs` topic parsed into one landing row, or one row with its parse error. -#}
{{ materialization_target_table(ref('jobs_queue')) }}
{{ parse_messages('jobs') }}
