{#-
  Every job log event once. Log lines expire after var log_retention_hours unless audit_mode;
  their counts never do (workflow_totals, workflow_daily, job_log_totals keep them).

  Ordered for the reads the gRPC service makes: a job's lines by sequence (then time and event),
  count-only events (`is_line` false) apart from the lines. A line without a sequence sorts as
  sequence 0 (assumeNotNull gives the 0 a NULL is stored over; unlike ifNull, the primary key
  can narrow a range by it), so a job whose producer does not number its lines reads in time
  order. Indexes: n-grams of the lower-cased message for case-insensitive `contains` searches,
  and the ingest time for the tails' "what landed since" polls (macros/job_log_indexes.sql).
  A table of an earlier version (ordered by time) stops the run unchanged:
  macros/job_log_upgrade.sql says how to upgrade it.
-#}
-- depends_on: {{ ref('log_retention_history') }}
{{ config(
    engine=engine('ReplacingMergeTree'),
    order_by='(user_id, workflow_id, job_id, is_line, assumeNotNull(sequence), event_time, dedup_key)',
    partition_by='toYYYYMMDD(event_time)',
    settings={'ttl_only_drop_parts': 1},
    pre_hook="{{ refuse_earlier_job_log_events(this) }}",
    post_hook=log_retention() + job_log_line_indexes(),
) }}

select
    cast('' as String) as event_id,
    cast(0 as DateTime64(3, 'UTC')) as event_time,
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast(1 as UInt64) as count,
    cast('' as LowCardinality(String)) as stream,
    cast(null as Nullable(UInt64)) as sequence,
    cast('' as String) as message,
    cast(false as Bool) as is_line,
    {{ kafka_position_columns() }},
    now64(3, 'UTC') as ingested_at,
    toFixedString('', 16) as dedup_key
where 0
