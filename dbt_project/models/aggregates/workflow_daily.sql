{#-
  The same counters per (user, workflow, day), for time series and date ranges. A day is the
  event's day (UTC): jobs on the day they first appear, durations and outcomes on the day they
  end, log entries on the day they were logged. A day's kind is the latest its events named that
  day (the kind filters of the gRPC calls take a workflow's kind now, workflow_totals', for every
  day). One partition per month: a query over a range
  of days reads a part or a few per month it spans, not one per day (measured on the extended
  RPCs: a day partition each cost about as much as the rest of the query). The reconciliation
  job corrects a day with delta rows (macros/rebuild.sql).
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
    cast({{ no_kind() }} as {{ kind_type() }}) as kind,
    {{ measure_columns() }}
where 0
