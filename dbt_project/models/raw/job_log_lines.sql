{#- Log lines expire after var log_retention_hours unless audit_mode; their counts never do. -#}
{{ config(
    engine=engine('ReplacingMergeTree'),
    order_by='(user_id, workflow_id, job_id, event_time, dedup_key)',
    partition_by='toYYYYMMDD(event_time)',
    settings={'ttl_only_drop_parts': 1},
    post_hook=log_retention(),
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
    {{ kafka_position_columns() }},
    now64(3, 'UTC') as ingested_at,
    toFixedString('', 16) as dedup_key
where 0
