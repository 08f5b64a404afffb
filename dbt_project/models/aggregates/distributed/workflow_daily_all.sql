{#- On a cluster: workflow_daily of every shard, for queries (each shard's views write its local table). -#}
{{ config(engine=distributed_engine('workflow_daily')) }}

select * from {{ ref('workflow_daily') }}
where 0
