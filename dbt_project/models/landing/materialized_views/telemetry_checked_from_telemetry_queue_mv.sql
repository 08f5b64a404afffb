{#- Each landing row of `telemetry` with its verdict: the contract is evaluated here once per block. -#}
{{ materialization_target_table(ref('telemetry_checked')) }}
{{ checked_landing_rows('telemetry') }}
