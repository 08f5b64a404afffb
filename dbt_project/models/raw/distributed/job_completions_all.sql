{#- On a cluster: job_completions of every shard, for the gRPC service's job-log queries. -#}
{{ config(engine=distributed_engine('job_completions')) }}

select * from {{ ref('job_completions') }}
where 0
