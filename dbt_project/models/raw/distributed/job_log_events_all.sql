{#- On a cluster: job_log_events of every shard, for the gRPC service's job-log queries. -#}
{{ config(engine=distributed_engine('job_log_events')) }}

select * from {{ ref('job_log_events') }}
where 0
