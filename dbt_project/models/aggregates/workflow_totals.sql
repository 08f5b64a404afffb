{#-
  The seed's "single analytics record per workflow": all-time counters per (user, workflow),
  fed by views from the deduplicated raw tables. Sum the counters over a key's rows (parts merge
  in the background) — the gRPC service and the user_totals view do.
-#}
{{ config(
    engine=engine('AggregatingMergeTree'),
    order_by='(user_id, workflow_id)',
    settings=aggregate_settings(),
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as SimpleAggregateFunction(max, String)) as kind,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_event_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as last_event_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as terminated_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as deleted_at,
    {{ measure_columns() }}
where 0
