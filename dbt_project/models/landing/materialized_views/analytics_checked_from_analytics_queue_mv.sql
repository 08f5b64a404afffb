{#- Each landing row of `analytics` with its verdict: the contract is evaluated here once per block. -#}
{{ materialization_target_table(ref('analytics_checked')) }}
{{ checked_landing_rows('analytics') }}
