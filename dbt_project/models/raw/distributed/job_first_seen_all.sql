{#- On a cluster: job_first_seen of every shard, for the gRPC service's job-log queries. -#}
{{ config(engine=distributed_engine('job_first_seen')) }}

select * from {{ ref('job_first_seen') }}
where 0
