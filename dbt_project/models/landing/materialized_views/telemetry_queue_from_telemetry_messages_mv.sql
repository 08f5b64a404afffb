{#- Each message of the `telemetry` topic parsed into one landing row, or one row with its parse error. -#}
{{ materialization_target_table(ref('telemetry_queue')) }}
{{ parse_messages('telemetry') }}
