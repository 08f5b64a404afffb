{#- On a cluster: workflow_totals of every shard, for queries (each shard's views write its local table). -#}
{{ config(
    enabled=clustered(),
    engine="Distributed('" ~ var('cluster') ~ "', currentDatabase(), 'workflow_totals', cityHash64(user_id))",
) }}

select * from {{ ref('workflow_totals') }}
where 0
