{#- On a cluster: job_log_totals of every shard, for queries (each shard's views write its local table). -#}
{{ config(engine=distributed_engine('job_log_totals')) }}

select * from {{ ref('job_log_totals') }}
where 0
