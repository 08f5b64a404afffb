{#- On a cluster: job_duration_daily of every shard, for queries (each shard's views write its local table). -#}
{{ config(engine=distributed_engine('job_duration_daily')) }}

select * from {{ ref('job_duration_daily') }}
where 0
