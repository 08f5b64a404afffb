{#- On a cluster: jobs_first_seen of every shard, for the gRPC service's job-log queries. -#}
{{ config(
    enabled=clustered(),
    engine="Distributed('" ~ var('cluster') ~ "', currentDatabase(), 'jobs_first_seen', cityHash64(user_id))",
) }}

select * from {{ ref('jobs_first_seen') }}
where 0
