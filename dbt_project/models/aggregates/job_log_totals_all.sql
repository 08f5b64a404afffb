{#- On a cluster: job_log_totals of every shard, for queries (each shard's views write its local table). -#}
{{ config(
    enabled=clustered(),
    engine="Distributed('" ~ var('cluster') ~ "', currentDatabase(), 'job_log_totals', cityHash64(user_id))",
) }}

select * from {{ ref('job_log_totals') }}
where 0
