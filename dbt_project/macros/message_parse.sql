{#-
  Each topic's fields and how one Kafka message becomes one typed landing row.

  Kinds: `string` (ids, names, timestamps; checked by the contract's rules), `number` (a Dynamic
  column, so the rules see the JSON type: 5 and 5.0 are numbers, "5" is not) and `object` (a JSON
  column). A field of another JSON type than its kind allows is a parse error, as it is for the
  HTTP intake, whose embedded server reads JSON strictly (embedded/engine.py, JSON_INPUT_PROFILE).
-#}

{% macro landing_fields(topic) %}
  {%- set envelope = [('event_id', 'string'), ('event_time', 'string'), ('event_type', 'string'), ('event_name', 'string')] -%}
  {%- set owner = [('user_id', 'string'), ('workflow_id', 'string')] -%}
  {%- if topic == 'workflows' -%}
    {{ return(envelope + owner + [('kind', 'string')]) }}
  {%- elif topic == 'jobs' -%}
    {{ return(envelope + owner + [('job_id', 'string'), ('status', 'string'), ('scheduled_at', 'string'),
                                  ('started_at', 'string'), ('completed_at', 'string')]) }}
  {%- elif topic == 'job_logs' -%}
    {{ return(envelope + owner + [('job_id', 'string'), ('count', 'number'), ('stream', 'string'),
                                  ('sequence', 'number'), ('message', 'string')]) }}
  {%- elif topic == 'analytics' -%}
    {{ return([('EventKey', 'string'), ('UserID', 'string'), ('WorkflowID', 'string'), ('EventType', 'string'),
               ('Data', 'object')]) }}
  {%- elif topic == 'telemetry' -%}
    {{ return([('message', 'message')]) }}
  {%- else -%}
    {{ exceptions.raise_compiler_error('no landing fields for topic ' ~ topic) }}
  {%- endif -%}
{% endmacro %}

{% macro landing_field_names(topic) %}
  {%- set names = [] -%}
  {%- for name, kind in landing_fields(topic) -%}{%- do names.append(name) -%}{%- endfor -%}
  {{ return(names) }}
{% endmacro %}

{#- The fields held as text (the contract's rules check they are UTF-8). -#}
{% macro landing_string_fields(topic) %}
  {%- set names = [] -%}
  {%- for name, kind in landing_fields(topic) if kind == 'string' -%}{%- do names.append(name) -%}{%- endfor -%}
  {{ return(names) }}
{% endmacro %}

{% macro landing_type(kind) -%}
  {{ {'string': 'Nullable(String)', 'number': 'Dynamic', 'object': 'Nullable(JSON)', 'message': 'String'}[kind] }}
{%- endmacro %}

{#- The typed columns of `<topic>_queue`, then the metadata every landing row carries. -#}
{% macro landing_columns(topic) -%}
  {%- for name, kind in landing_fields(topic) %}
    cast({{ "''" if kind == 'message' else 'null' }} as {{ landing_type(kind) }}) as {{ name }},
  {%- endfor %}
    {{ landing_metadata_columns() }}
{%- endmacro %}

{#- The JSON type of a raw value (`raw`: its text, '' when the key is absent), in words. -#}
{% macro json_kind(raw) -%}
  transform(left({{ raw }}, 1), ['{', '[', 't', 'f', '"'], ['an object', 'an array', 'a boolean', 'a boolean', 'a string'], 'a number')
{%- endmacro %}

{#-
  True when a string-looking raw value of the key `key` (an SQL expression) was a bare integer
  beyond 64 bits: simdjson (the JSON functions' parser) hands such an integer over as a string. Past
  UInt64 that is 20 digits or more, below Int64 19 (-9223372036854775809 to -9999999999999999999):
  read as text, such a value was refused as no number, and taken where a string belongs.
  The key is then nowhere in the message followed by the quoted form (the same digits quoted as
  another field's value do not count). Rare, so the test is cheap: only all-digit values get the
  search.
-#}
{% macro bare_big_integer(key, raw, message) -%}
  (match({{ raw }}, {{ big_integer_text() }}) AND {{ not_quoted_after(key, raw, message) }})
{%- endmacro %}

{#- The text simdjson gives for an integer beyond 64 bits: its digits in quotes, 20 or more, or 19 or
    more after a minus. -#}
{% macro big_integer_text() -%}
  '^"(-[0-9]{19,}|[0-9]{20,})"$'
{%- endmacro %}

{#- Whether the message lacks `"<key>": <raw>` (any JSON whitespace around the colon); key and raw
    are SQL expressions, a field's name and digits in quotes, so nothing in them is a regex operator. -#}
{% macro not_quoted_after(key, raw, message) -%}
  NOT match({{ message }}, concat('"', {{ key }}, '"[ \t\n\r]*:[ \t\n\r]*', {{ raw }}))
{%- endmacro %}

{#- A field's value from its raw text (`fields`); the string fields' values come decoded (`string_values`). -#}
{% macro parsed_field(name, kind) -%}
  {%- set raw = "fields['" ~ name ~ "']" -%}
  {%- if kind == 'string' -%}
    tupleElement(string_values, '{{ name }}')
  {%- elif kind == 'number' -%}
    multiIf(
        {{ raw }} IN ('', 'null'), null,
        JSONType({{ raw }}) = 'Int64', cast(JSONExtractInt({{ raw }}) as Dynamic),
        JSONType({{ raw }}) = 'UInt64', cast(JSONExtractUInt({{ raw }}) as Dynamic),
        JSONType({{ raw }}) = 'Double', cast(JSONExtractFloat({{ raw }}) as Dynamic),
        {{ bare_big_integer("'" ~ name ~ "'", raw, 'payload') }}, cast(toFloat64OrNull(trim(BOTH '"' FROM {{ raw }})) as Dynamic),
        cast({{ raw }} as Dynamic))
  {%- elif kind == 'object' -%}
    if(left({{ raw }}, 1) = '{', cast(if(left({{ raw }}, 1) = '{', {{ raw }}, '{}') as JSON), null)
  {%- endif -%}
{%- endmacro %}

{#-
  The string fields' type errors, written once for all of them as lambdas over the message's own
  keys and raw values (`pairs`), not once per field: ClickHouse plans a view's SELECT again for
  every block, and the time grows with the expression (docs/performance.md, "The landing parse, planned once
  for all its fields").

  string_field_checks: per pair, '' (not a string field, or a string or null), its error ('<name>
  is an array, not a string'), or '?' when it may be a bare big integer (bare_big_integer).
  string_field_error: the first string field, in the topic's order, with an error, else ''. Only a
  message with a check left sorts its pairs into that order and searches itself for a candidate's
  key followed by its quoted form.
-#}
{% macro string_field_checks(topic) -%}
  arrayMap((key, raw) -> multiIf(
        key NOT IN ({{ sql_strings(landing_string_fields(topic)) }}), '',
        left(raw, 1) NOT IN ('"', 'n', ''), key || ' is ' || {{ json_kind('raw') }} || ', not a string',
        match(raw, {{ big_integer_text() }}), '?',
        ''), pairs.1, pairs.2)
{%- endmacro %}

{% macro string_field_error(topic) -%}
  if(NOT arrayExists(check -> check != '', string_checks), '', arrayFirst(error -> error != '', arrayMap(
        pair -> if(pair.3 = '?', if({{ not_quoted_after('pair.1', 'pair.2', 'payload') }}, pair.1 || ' is a number, not a string', ''), pair.3),
        arraySort(pair -> indexOf([{{ sql_strings(landing_string_fields(topic)) }}], pair.1),
                  arrayZip(pairs.1, pairs.2, string_checks)))))
{%- endmacro %}

{#- The type a message's string fields are read into: Tuple(event_id Nullable(String), ...). -#}
{% macro string_fields_tuple(topic) -%}
  Tuple({%- for name in landing_string_fields(topic) -%}{{ name }} Nullable(String){{ ', ' if not loop.last }}{%- endfor -%})
{%- endmacro %}

{#- Names as SQL string literals: 'a', 'b'. -#}
{% macro sql_strings(names) -%}
  {%- for name in names -%}'{{ name }}'{{ ', ' if not loop.last }}{%- endfor -%}
{%- endmacro %}

{#- The parse error of an object field's JSON type, or ''. -#}
{% macro object_field_error(name) -%}
  {%- set raw = "fields['" ~ name ~ "']" -%}
    left({{ raw }}, 1) NOT IN ('{', 'n', ''), '{{ name }} is {{ "' || " ~ json_kind(raw) ~ " || '" }}, not an object',
{%- endmacro %}

{#- Whether a message that is not JSON has a first line that is: newline-delimited events packed
    into one message, which a sender would otherwise read as a broken event. Only messages that are
    not JSON get here (multiIf evaluates it for them alone). -#}
{% macro first_line_is_json(message) -%}
  (position({{ message }}, '\n') > 0 AND isValidJSON(substring({{ message }}, 1, position({{ message }}, '\n') - 1)))
{%- endmacro %}

{#-
  One typed landing row per message (`payload`) of `<topic>_messages`: its fields, its position, and `_error`
  when it cannot be read (not UTF-8, not JSON, not one object, a duplicate key, a field of the wrong
  JSON type). `_raw_message` keeps the message's bytes for the dead letters. The string fields'
  errors come before the object field's (analytics' Data, its last field).
-#}
{% macro parse_messages(topic) -%}
with
    isValidUTF8(payload) as is_utf8,
{%- if topic == 'telemetry' %}
    is_utf8 and isValidJSON(payload) as is_json,
    if(is_json, JSONType(payload), 'Null') as json_type
{%- else %}
    if(is_utf8, JSONExtractKeysAndValuesRaw(payload), []) as pairs,
    {#- An object with keys was parsed whole by the line above; only the other messages are parsed again to tell why they have none. #}
    notEmpty(pairs) or (is_utf8 and isValidJSON(payload)) as is_json,
    if(notEmpty(pairs), 'Object', if(is_json, JSONType(payload), 'Null')) as json_type,
    mapFromArrays(pairs.1, pairs.2) as fields,
    {#- The string fields decoded in one pass; only an object has fields. A value of another JSON
        type comes as its text, but its row has an _error and its fields go nowhere. Over the bare
        column, ClickHouse would turn each tupleElement of it into an extraction of its own, one
        parse of the message per field (3.5 times slower). #}
    JSONExtract(if(json_type = 'Object', payload, '{}'), '{{ string_fields_tuple(topic) }}') as string_values,
    {{ string_field_checks(topic) }} as string_checks,
    {{ string_field_error(topic) }} as string_error
{%- endif %}
select
  {%- for name, kind in landing_fields(topic) %}
    {{ 'payload' if kind == 'message' else parsed_field(name, kind) }} as {{ name }},
  {%- endfor %}
    _topic,
    _partition,
    _offset,
    _timestamp_ms,
    multiIf(
        {#- JSON never begins with byte 0, so this costs a comparison of one byte a message. #}
        length(payload) >= 5 AND startsWith(payload, char(0)),
            'the message begins with byte 0 and is not JSON: Confluent Schema Registry''s serializers frame a message so (byte 0, a 4-byte schema id, then the data); a message must be the event''s JSON alone',
        not is_utf8, 'the message is not valid UTF-8',
        payload = '', 'the message is empty',
        not is_json AND {{ first_line_is_json('payload') }},
            'the message is not one JSON value: its first line is a whole one and more follows (a message carries one event; events are not read line by line)',
        not is_json, 'the message is not valid JSON',
        json_type != 'Object', 'the message is a JSON ' || lower(json_type) || ', not an object',
      {%- if topic != 'telemetry' %}
        length(pairs) != length(arrayDistinct(pairs.1)), 'the message has a duplicate key',
        hasAny(pairs.1, [{{ sql_strings(kafka_column_names()) }}]),
            arrayFirst(key -> has([{{ sql_strings(kafka_column_names()) }}], key), pairs.1) || ' is set by Kafka ingest, never by a sender',
        string_error != '', string_error,
        {%- for name, kind in landing_fields(topic) if kind == 'object' %}
        {{ object_field_error(name) }}
        {%- endfor %}
      {%- endif %}
        '') as _error,
    payload as _raw_message
from {{ ref(topic ~ '_messages') }}
{%- endmacro %}
