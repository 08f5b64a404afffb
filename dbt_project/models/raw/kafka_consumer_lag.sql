{#-
  Consumer lag per group, topic and partition as the embedded Kafka bridge last measured it
  (server mode reads system.kafka_consumers instead). One row per partition after merges;
  read it with FINAL.
-#}
{{ config(
    engine=engine('ReplacingMergeTree', 'measured_at'),
    order_by='(consumer_group, topic, partition)',
) }}

select
    cast('' as String) as consumer_group,
    cast('' as LowCardinality(String)) as topic,
    cast(0 as UInt32) as "partition",
    cast(-1 as Int64) as committed_offset,
    cast(0 as Int64) as high_watermark,
    cast(0 as Int64) as lag,
    now64(3, 'UTC') as measured_at
where 0
