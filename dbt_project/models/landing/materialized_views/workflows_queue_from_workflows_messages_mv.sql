{#- Each message of the `workflows` topic parsed into one landing row, or one row with its parse error. -#}
{{ materialization_target_table(ref('workflows_queue')) }}
{{ parse_messages('workflows') }}
