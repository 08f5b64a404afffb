{#-
  The change feed of workflow_totals: one row per (user, workflow) each time an insert into
  workflow_totals touched it, stamped with the server's clock. The gRPC service's serving model
  polls it for the keys changed since its last poll and re-reads their totals, so its answers
  stay exact without reading workflow_totals whole again. Rows are needed only for minutes.
-#}
{{ config(
    engine=engine('MergeTree'),
    order_by='changed_at',
    ttl='toDateTime(changed_at) + interval 1 hour',
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast(0 as DateTime64(6, 'UTC')) as changed_at
where 0
