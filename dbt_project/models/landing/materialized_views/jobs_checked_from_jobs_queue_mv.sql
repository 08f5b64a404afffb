{#- Each landing row of `jobs` with its verdict: the contract is evaluated here once per block. -#}
{{ materialization_target_table(ref('jobs_checked')) }}
{{ checked_landing_rows('jobs') }}
