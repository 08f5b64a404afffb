{#- Each landing row of `workflows` with its verdict: the contract is evaluated here once per block. -#}
{{ materialization_target_table(ref('workflows_checked')) }}
{{ checked_landing_rows('workflows') }}
