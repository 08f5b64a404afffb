{#-
  Landing: how a topic's events arrive, in two steps per topic.

  `<topic>_messages`: one row per Kafka message, its bytes untouched (`payload`) and its position.
    ingest=kafka: a Kafka-engine table (format RawBLOB: one message, one row, whatever its bytes; no
    parse can fail there, the parsing happens in the view below).
    ingest=direct: a Null table the embedded Kafka bridge inserts into (RowBinary, one String per
    message, so no message can merge with, swallow or break its neighbours).
  `<topic>_queue`: the typed landing rows every view reads, always a Null table. The view
    `<topic>_queue_from_messages_mv` parses each message into one row here (or one row with
    `_error` set: the Kafka engine's error-stream mode); the HTTP intake inserts typed rows
    straight into it (`INSERT ... FORMAT JSONEachRow`).
-#}

{% macro messages_config(topic) %}
  {%- if var('ingest') == 'kafka' -%}
    {{ return({
      'engine': 'Kafka()',
      'settings': {
        'kafka_broker_list': var('kafka_broker_list'),
        'kafka_topic_list': var('kafka_topic_prefix') ~ topic,
        'kafka_group_name': var('kafka_consumer_group_prefix') ~ '_' ~ topic,
        'kafka_format': 'RawBLOB',
        'kafka_num_consumers': var('kafka_num_consumers'),
        'kafka_max_block_size': var('kafka_max_block_size'),
        'kafka_flush_interval_ms': var('kafka_flush_interval_ms'),
      },
    }) }}
  {%- elif var('ingest') == 'direct' -%}
    {{ return({'engine': 'Null()'}) }}
  {%- else -%}
    {{ exceptions.raise_compiler_error("var ingest must be 'direct' or 'kafka', not " ~ var('ingest')) }}
  {%- endif -%}
{% endmacro %}

{#- The columns of `<topic>_messages`: the Kafka engine has the position as virtual columns. -#}
{% macro message_columns() -%}
    cast('' as String) as payload
  {%- if var('ingest') != 'kafka' %},
    cast('' as String) as _topic,
    cast(0 as UInt64) as _partition,
    cast(0 as UInt64) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms
  {%- endif -%}
{%- endmacro %}

{#-
  What every typed landing row carries besides its fields: the Kafka position (null for rows
  sent over HTTP) and, for a message that could not be parsed, the error and its bytes.
-#}
{% macro landing_metadata_columns() -%}
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms,
    cast('' as String) as _error,
    cast(null as Nullable(String)) as _raw_message
{%- endmacro %}

{#- The landing columns only Kafka ingest fills: an event's own keys may not have these names
    (events/contract.py KAFKA_COLUMNS; telemetry, which lands whole, excepted). -#}
{% macro kafka_column_names() %}
  {{ return(['_topic', '_partition', '_offset', '_timestamp_ms', '_raw_message', '_error']) }}
{% endmacro %}

{#- The Kafka position of a row, as the raw-history tables keep it. -#}
{% macro kafka_position(topic) -%}
    ifNull(_topic, '{{ topic }}') as kafka_topic,
    _partition as kafka_partition,
    _offset as kafka_offset,
    _timestamp_ms as kafka_timestamp
{%- endmacro %}

{#- Typed columns of the Kafka position, for the raw-history table definitions. -#}
{% macro kafka_position_columns() -%}
    cast('' as LowCardinality(String)) as kafka_topic,
    cast(null as Nullable(UInt64)) as kafka_partition,
    cast(null as Nullable(UInt64)) as kafka_offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp
{%- endmacro %}

{#- A row that came from Kafka (the bridge, the Kafka engine, a dead-letter replay) has a position
    and its message's bytes: the view parsing the messages sets both. -#}
{% macro from_kafka() -%} (_offset IS NOT NULL AND _raw_message IS NOT NULL) {%- endmacro %}

{#- A topic's landing rows with their verdict, `_violation` (contract_violation): the contract's
    rules are evaluated once per block, into `<topic>_checked`, and the views behind it read the
    verdict as a column. Checked on the columns as delivered (before any renaming in the view:
    ClickHouse resolves names in WHERE to SELECT aliases first). -#}
{% macro checked_landing_rows(topic) -%}
select *, {{ contract_violation(topic) }} as _violation
from {{ ref(topic ~ '_queue') }}
{%- endmacro %}

{#- A topic's checked rows that satisfy the contract; an HTTP insert that breaks it fails, naming the rule.
    The rule checks read `_violation` as a column of `<topic>_checked`: over the `multiIf` itself,
    each of them made the analyser go through the whole `multiIf` again, on every insert (measured:
    a contract view's planning fell from 107 to 43 ms, the multiIf's own view taking 25). -#}
{% macro accepted_landing_rows(topic) -%}
    select *
    from {{ ref(topic ~ '_checked') }}
    where {{ contract_holds(topic) }}
{%- endmacro %}

{#- What a topic delivered from Kafka that cannot be taken in, and why: one dead letter per message. -#}
{% macro dead_letters_from(topic) -%}
select
    assumeNotNull(_topic) as topic,
    _partition as "partition",
    _offset as offset,
    _timestamp_ms as kafka_timestamp,
    -- the message's own bytes; a row replayed without them stands in with its parsed fields
    ifNull(_raw_message, formatRowNoNewline('JSONEachRow', {{ landing_field_names(topic) | join(', ') }})) as raw_message,
    _violation as error,
    now64(3, 'UTC') as received_at
from {{ ref(topic ~ '_checked') }}
where {{ from_kafka() }} and _violation != ''
{%- endmacro %}
