{#- On a cluster: workflow_totals of every shard, for queries (each shard's views write its local table). -#}
{{ config(engine=distributed_engine('workflow_totals')) }}

select * from {{ ref('workflow_totals') }}
where 0
