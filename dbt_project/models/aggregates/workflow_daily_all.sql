{#- On a cluster: workflow_daily of every shard, for queries (each shard's views write its local table). -#}
{{ config(
    enabled=clustered(),
    engine="Distributed('" ~ var('cluster') ~ "', currentDatabase(), 'workflow_daily', cityHash64(user_id))",
) }}

select * from {{ ref('workflow_daily') }}
where 0
