{#-
  The seed's "single analytics record per workflow": all-time counters per (user, workflow),
  fed by views from the deduplicated raw tables. Sum the counters over a key's rows (parts merge
  in the background) — the gRPC service and the user_totals view do. kind is (time, kind) of the
  latest event naming one (counters.sql): `tupleElement(max(kind), 2)` is the workflow's kind now.
-#}
{{ config(
    engine=engine('AggregatingMergeTree'),
    order_by='(user_id, workflow_id)',
    settings=aggregate_settings(),
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast({{ no_kind() }} as {{ kind_type() }}) as kind,
    cast(null as SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))) as first_event_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as last_event_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as terminated_at,
    cast(null as SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))) as deleted_at,
    {{ measure_columns() }}
where 0
