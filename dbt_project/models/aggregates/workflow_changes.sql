{#-
  The change feed of workflow_totals and job_duration_daily: one row per (user, workflow) each
  time an insert into either touched it, with the time the insert ran. The gRPC service's
  serving model polls it by block number (parts get theirs as they commit, in commit order) for
  the keys changed since its last polls and re-reads their totals and their users' duration
  percentiles, so its answers stay exact without reading the tables whole again. Rows are needed only for seconds; kept 15 minutes.
-#}
{{ config(
    engine=engine('MergeTree'),
    order_by='changed_at',
    ttl='toDateTime(changed_at) + interval 15 minute',
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast(0 as DateTime64(6, 'UTC')) as changed_at
where 0
