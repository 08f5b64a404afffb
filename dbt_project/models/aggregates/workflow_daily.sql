{#-
  The same counters per (user, workflow, day), for time series and date ranges. A day is the
  event's day (UTC): jobs on the day they first appear, durations and outcomes on the day they
  end, log entries on the day they were logged. One partition per day, which the reconciliation
  job replaces when it rebuilds a day.
-#}
{{ config(
    engine=engine('AggregatingMergeTree'),
    order_by='(user_id, workflow_id, day)',
    partition_by='toYYYYMMDD(day)',
    settings=aggregate_settings(),
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('1970-01-01' as Date) as day,
    cast('' as SimpleAggregateFunction(max, String)) as kind,
    {{ measure_columns() }}
where 0
