{#-
  The first-seen gate: how each fact is counted once however often it is delivered.

  Every gated table stores a 128-bit `dedup_key` per row (e.g. the topic and event id). A view
  feeding a gated table keeps one row per key from the incoming block and drops keys already in
  `seen_keys` (an EmbeddedRocksDB table: point lookups by key); a view on the gated table writes
  the keys it received into `seen_keys`. So a duplicate, in the same batch or days later, never
  reaches the gated table, and nothing downstream of it (the aggregates) sees it twice.

  Keys are written after the gated insert, so two inserts racing with the same new key at the
  same moment could both pass; the gated tables are ReplacingMergeTree on their key, and the
  reconciliation job rebuilds aggregates from them with FINAL (README, "Exactness").
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
  it empty; such an event counts once per Kafka position (topic, partition, offset), so Kafka's
  redeliveries count once, and each time it is sent over HTTP (no position: a key of its own).
-#}
{% macro analytics_dedup_key() -%}
  multiIf(
    ifNull(EventKey, '') != '', {{ dedup_key('analytics', 'EventKey') }},
    _offset IS NOT NULL, {{ dedup_key('analytics_position', 'ifNull(_topic, \'\')', 'ifNull(_partition, 0)', 'assumeNotNull(_offset)') }},
    {{ dedup_key('analytics_unkeyed', 'generateUUIDv4(_raw_message)') }})
{%- endmacro %}
