{#-
  Messages that could not be taken in: unparsable, or breaking the event contract. Written by
  the dead-letter views with Kafka-engine ingest, and by the embedded Kafka bridge. One row per
  Kafka position: a message dead-lettered again after a crash and redelivery merges away.
-#}
{{ config(
    engine=engine('ReplacingMergeTree'),
    order_by='(topic, partition, offset)',
    settings={'allow_nullable_key': 1},
) }}

select
    cast('' as LowCardinality(String)) as topic,
    cast(null as Nullable(UInt64)) as "partition",
    cast(null as Nullable(UInt64)) as offset,
    -- Kafka's timestamp of the message (a keyless scheduler event is known by it and its position)
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
    cast('' as String) as raw_message,
    cast('' as String) as error,
    now64(3, 'UTC') as received_at
where 0
