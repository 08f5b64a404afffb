{#- On a cluster: job_completions of every shard, for the gRPC service's job-log queries. -#}
{{ config(
    enabled=clustered(),
    engine="Distributed('" ~ var('cluster') ~ "', currentDatabase(), 'job_completions', cityHash64(user_id))",
) }}

select * from {{ ref('job_completions') }}
where 0
