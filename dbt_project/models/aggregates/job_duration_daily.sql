{#-
  Execution-duration distributions of finished (completed or failed) jobs per (user, workflow,
  day) as t-digest states: merge them over any range with quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99).
  Kept apart from the counters so the counters' point lookups never read a digest. One partition
  per month, as workflow_daily; the reconciliation job replaces a day's rows (macros/rebuild.sql).
-#}
{{ config(
    engine=engine('AggregatingMergeTree'),
    order_by='(user_id, workflow_id, day)',
    partition_by='toYYYYMM(day)',
    settings=aggregate_settings(),
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('1970-01-01' as Date) as day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(cast(0 as Float64)) as duration_seconds_quantiles
group by user_id, workflow_id, day
having 0
