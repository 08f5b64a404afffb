{#-
  Messages that could not be taken in: unparsable, or breaking the event contract. Written by
  the dead-letter views with Kafka-engine ingest, and by the embedded Kafka bridge.
-#}
{{ config(
    engine=engine('MergeTree'),
    order_by='(topic, received_at)',
    partition_by='toYYYYMM(received_at)',
) }}

select
    cast('' as LowCardinality(String)) as topic,
    cast(null as Nullable(UInt64)) as partition,
    cast(null as Nullable(UInt64)) as offset,
    cast('' as String) as raw_message,
    cast('' as String) as error,
    now64(3, 'UTC') as received_at
where 0
