{#- On a cluster: job_duration_daily of every shard, for queries (each shard's views write its local table). -#}
{{ config(
    enabled=clustered(),
    engine="Distributed('" ~ var('cluster') ~ "', currentDatabase(), 'job_duration_daily', cityHash64(user_id))",
) }}

select * from {{ ref('job_duration_daily') }}
where 0
