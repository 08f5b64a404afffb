{#-
  Messages that could not be taken in: unparsable, or breaking the event contract. Written by
  the dead-letter views with Kafka-engine ingest, and by the embedded Kafka bridge. One row per
  Kafka message, known by its position and Kafka timestamp (a topic deleted and created again
  has new messages at the old positions), at its first arrival: a message dead-lettered again
  after a crash, a rebalance or a reset of the group's offsets merges away into the row it first
  made, so it is no new dead letter (first_arrival_version, macros/dead_letters_upgrade.sql).
-#}
{{ config(
    engine=engine('ReplacingMergeTree', 'first_arrival_version'),
    order_by='(topic, partition, offset, kafka_timestamp)',
    settings={'allow_nullable_key': 1},
    post_hook="{{ dead_letters_version_default(this) }}",
) }}

select
    cast('' as LowCardinality(String)) as topic,
    cast(null as Nullable(UInt64)) as "partition",
    cast(null as Nullable(UInt64)) as offset,
    -- Kafka's timestamp of the message (a keyless scheduler event is known by it and its position)
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp,
    cast('' as String) as raw_message,
    cast('' as String) as error,
    now64(3, 'UTC') as received_at,
    {{ first_arrival_version('received_at') }} as first_arrival_version
where 0
