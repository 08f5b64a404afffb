{#-
  Landing tables, `<topic>_queue`: where a topic's messages arrive.

  ingest=direct: a Null table. Its views run on every insert (HTTP intake, the SDK's ClickHouse
  sink, the embedded Kafka bridge) and it stores nothing.
  ingest=kafka: a Kafka-engine table consuming the topic with one consumer group per table, in
  error-stream mode so unparsable messages reach the dead letters instead of stopping the table.
-#}

{% macro landing_config(topic, format='JSONEachRow') %}
  {%- if var('ingest') == 'kafka' -%}
    {{ return({
      'engine': 'Kafka()',
      'settings': {
        'kafka_broker_list': var('kafka_broker_list'),
        'kafka_topic_list': var('kafka_topic_prefix') ~ topic,
        'kafka_group_name': var('kafka_consumer_group_prefix') ~ '_' ~ topic,
        'kafka_format': format,
        'kafka_handle_error_mode': 'stream',
        'kafka_num_consumers': var('kafka_num_consumers'),
        'kafka_max_block_size': var('kafka_max_block_size'),
        'kafka_flush_interval_ms': var('kafka_flush_interval_ms'),
        'date_time_input_format': 'best_effort',
        'input_format_json_read_objects_as_strings': 1,
      },
    }) }}
  {%- elif var('ingest') == 'direct' -%}
    {{ return({'engine': 'Null()'}) }}
  {%- else -%}
    {{ exceptions.raise_compiler_error("var ingest must be 'direct' or 'kafka', not " ~ var('ingest')) }}
  {%- endif -%}
{% endmacro %}

{#-
  The Kafka engine's virtual columns. With direct ingest they are ordinary nullable columns,
  which the embedded bridge fills and plain HTTP inserts leave empty; views read them the same way.
-#}
{% macro kafka_metadata_columns() -%}
  {%- if var('ingest') != 'kafka' -%}
    ,
    cast(null as Nullable(String)) as _topic,
    cast(null as Nullable(UInt64)) as _partition,
    cast(null as Nullable(UInt64)) as _offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms
  {%- endif -%}
{%- endmacro %}

{#- The Kafka position of a row, as the raw-history tables keep it. -#}
{% macro kafka_position(topic) -%}
    ifNull(cast(_topic as Nullable(String)), '{{ topic }}') as kafka_topic,
    cast(_partition as Nullable(UInt64)) as kafka_partition,
    cast(_offset as Nullable(UInt64)) as kafka_offset,
    cast(_timestamp_ms as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp
{%- endmacro %}

{#- Typed columns of the Kafka position, for the raw-history table definitions. -#}
{% macro kafka_position_columns() -%}
    cast('' as LowCardinality(String)) as kafka_topic,
    cast(null as Nullable(UInt64)) as kafka_partition,
    cast(null as Nullable(UInt64)) as kafka_offset,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as kafka_timestamp
{%- endmacro %}

{#- Every column of a landing row, with the Kafka engine's virtual ones, which `*` leaves out. -#}
{% macro landing_columns() -%}
  {%- if var('ingest') == 'kafka' -%}
    *, _topic, _partition, _offset, _timestamp_ms, _error, _raw_message
  {%- else -%}
    *
  {%- endif -%}
{%- endmacro %}

{#- A topic's landing rows that satisfy the contract, checked on the columns as delivered (before
    any renaming in the view: ClickHouse resolves names in WHERE to SELECT aliases first). -#}
{% macro accepted_landing_rows(topic) -%}
    select {{ landing_columns() }}
    from {{ ref(topic ~ '_queue') }}
    where {{ contract_holds(topic) }}
{%- endmacro %}

{#- With Kafka-engine ingest: what a topic delivered that cannot be taken in, and why. -#}
{% macro dead_letters_from(topic) -%}
select
    _topic as topic,
    _partition as partition,
    _offset as offset,
    {%- if topic == 'telemetry' %}
    if(_raw_message != '', _raw_message, message) as raw_message,
    {%- else %}
    -- a message that parsed but breaks a rule has no _raw_message: its parsed fields stand in
    if(_raw_message != '', _raw_message, formatRowNoNewline('JSONEachRow', *)) as raw_message,
    {%- endif %}
    {{ contract_violation(topic) }} as error,
    now64(3, 'UTC') as received_at
from {{ ref(topic ~ '_queue') }}
where not ({{ contract_holds(topic) }})
{%- endmacro %}
