{#-
  The first-seen gate: how each fact is counted once however often it is delivered.

  Every gated table stores a 128-bit `dedup_key` per row (e.g. the topic and event id). A view
  feeding a gated table keeps one row per key from the incoming block and drops keys already in
  `seen_keys` (an EmbeddedRocksDB table: point lookups by key); a view on the gated table writes
  the keys it received into `seen_keys`. So a duplicate, in the same batch or days later, never
  reaches the gated table, and nothing downstream of it (the aggregates) sees it twice.

  Keys are written after the gated insert, so two inserts racing with the same new key at the
  same moment could both pass; the gated tables are ReplacingMergeTree on their key, and the
  reconciliation job rebuilds aggregates from them with FINAL (README, "Metrics and exactness").
-#}

{% macro dedup_key(namespace) -%}
  sipHash128('{{ namespace }}', {{ varargs | join(', ') }})
{%- endmacro %}

{#-
  Rows of `incoming` (a CTE with a `dedup_key` column) whose key has not been seen yet.
  `keys` computes the same keys straight from the view's source block, so the lookup's key list
  is a cheap hash instead of a second evaluation of the whole CTE. `seen_keys` names the table
  where ref() cannot (a hook).
-#}
{% macro first_seen(incoming, keys, seen_keys=none) -%}
  select * from {{ incoming }}
  where dedup_key not in (
      select key from {{ seen_keys if seen_keys is not none else ref('seen_keys') }}
      where key in ({{ keys }})
  )
{%- endmacro %}

{#-
  The key of a scheduler (`analytics` topic) event: its EventKey. The scheduler's older code sends
  it empty; such an event counts once per Kafka message, known by its position (topic, partition,
  offset) and the time Kafka stamped on it: Kafka's redeliveries count once, and the messages of a
  topic deleted and created again, whose offsets start at 0 again, count as the new messages they
  are. Sent over HTTP (no position), each time counts (a key of its own).
-#}
{% macro analytics_dedup_key() -%}
  multiIf(
    ifNull(EventKey, '') != '', {{ dedup_key('analytics', 'EventKey') }},
    {{ from_kafka() }}, {{ analytics_message_key("ifNull(_topic, '')", 'ifNull(_partition, 0)', 'assumeNotNull(_offset)', '_timestamp_ms') }},
    {{ dedup_key('analytics_unkeyed', 'generateUUIDv4(_raw_message)') }})
{%- endmacro %}

{#- A message without a Kafka timestamp (or a dead letter stored before dead_letters kept it) has -1. -#}
{% macro analytics_message_key(topic, partition, offset, timestamp) -%}
  {{ dedup_key('analytics_kafka_message', topic, partition, offset, 'ifNull(toUnixTimestamp64Milli(' ~ timestamp ~ '), -1)') }}
{%- endmacro %}

{#-
  Earlier versions knew a keyless scheduler event by its position alone. At the start of a run
  that finds the view on that key, the new keys of every such event already stored are written
  to seen_keys, so a message delivered again after the upgrade counts once; the run then replaces
  the view. Writing a key twice changes nothing. On a cluster seen_keys is each node's own and the
  keys are not written (README, "Upgrading the keys of keyless scheduler events").
-#}
{% macro upgrade_analytics_message_keys() -%}
  {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- set events = adapter.get_relation(database=none, schema=target.schema, identifier='analytics_events') -%}
    {%- set feeding = run_query(
        "select create_table_query from system.tables where database = '" ~ target.schema
        ~ "' and name = 'analytics_events_from_analytics_checked_mv'") -%}
    {%- set earlier = feeding.rows | length == 0 or "'analytics_kafka_message'" not in feeding.columns[0].values()[0] -%}
    {%- if events is not none and earlier and not clustered() -%}
      {% do run_query('insert into ' ~ target.schema ~ '.seen_keys select '
          ~ analytics_message_key('kafka_topic', 'ifNull(kafka_partition, 0)', 'assumeNotNull(kafka_offset)', 'kafka_timestamp')
          ~ ' from ' ~ events ~ " where event_key = '' and kafka_offset is not null") %}
      {{ log('wrote the keys of ' ~ events ~ '\'s keyless events by Kafka position and timestamp into seen_keys'
             ~ ' (an earlier version knew them by position alone); the run replaces its view', info=True) }}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}
