{#- Each message of the `analytics` topic parsed into one landing row, or one row with its parse error. -#}
{{ materialization_target_table(ref('analytics_queue')) }}
{{ parse_messages('analytics') }}
