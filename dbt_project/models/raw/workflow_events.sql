{{ config(
    engine=engine('ReplacingMergeTree'),
    order_by='(user_id, workflow_id, event_time, dedup_key)',
    partition_by='toYYYYMM(event_time)',
) }}

select
    cast('' as String) as event_id,
    cast(0 as DateTime64(3, 'UTC')) as event_time,
    cast('' as LowCardinality(String)) as event_name,
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as LowCardinality(String)) as kind,
    {{ kafka_position_columns() }},
    now64(3, 'UTC') as ingested_at,
    toFixedString('', 16) as dedup_key
where 0
