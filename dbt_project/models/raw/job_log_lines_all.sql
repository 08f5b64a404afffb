{#- On a cluster: job_log_lines of every shard, for the gRPC service's job-log queries. -#}
{{ config(
    enabled=clustered(),
    engine="Distributed('" ~ var('cluster') ~ "', currentDatabase(), 'job_log_lines', cityHash64(user_id))",
) }}

select * from {{ ref('job_log_lines') }}
where 0
