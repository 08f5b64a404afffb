{#- Product telemetry with every attribute kept: `attributes` is the whole event as JSON. -#}
{{ config(
    engine=engine('ReplacingMergeTree'),
    order_by='(event_type, event_name, event_time, dedup_key)',
    partition_by='toYYYYMM(event_time)',
) }}

select
    cast('' as String) as event_id,
    cast(0 as DateTime64(3, 'UTC')) as event_time,
    cast('' as LowCardinality(String)) as event_type,
    cast('' as LowCardinality(String)) as event_name,
    cast('' as String) as user_id,
    cast('' as LowCardinality(String)) as service_name,
    cast(null as Nullable(Float64)) as value,
    cast('{}' as JSON) as attributes,
    {{ kafka_position_columns() }},
    now64(3, 'UTC') as ingested_at,
    toFixedString('', 16) as dedup_key
where 0
