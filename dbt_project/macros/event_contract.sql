{#-
  The event contract of DESIGN.md as named rules, one list per topic: the SQL twin of the JSON
  Schemas in events/schemas/ (tests/test_contract_verdicts.py holds both to one verdict).

  Each rule is (name, expression, message), on the typed columns of `<topic>_queue`. The view that
  takes a topic's landing rows into raw history applies them. A row sent over HTTP that breaks a
  rule fails the whole insert with an error naming the rule, so the sender can fix and resend the
  batch; nothing of it is stored. A row from Kafka (it has a position) that breaks one is left
  out, and the dead-letter view keeps it with the first rule it breaks: a bad message never
  blocks its neighbours.
-#}

{#- ISO 8601 with Z or an offset, as the schemas' `timestamp` pattern (RE2: `$` is the end of the text). -#}
{% macro timestamp_pattern() -%}
'^(1969|19[7-9][0-9]|20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$'
{%- endmacro %}

{#- A timestamp field as DateTime64(3, 'UTC'); null for anything the contract refuses (e.g. 2026-02-30,
    or a time outside the days the aggregates' Date columns hold, 1970-01-01 to 2149-06-06 in UTC,
    which toDate would wrap around). The pattern holds the years 1969 to 2149; only a time in 1969
    (an offset west of UTC puts 1969-12-31 in 1970), on the first day (an offset east of UTC puts
    it in 1969) or in the last year is compared once parsed, so the others pay for one parse, not
    two (a second parse and compare of every timestamp cost about 50 ns, measured). -#}
{% macro parse_timestamp(column) -%}
  {%- set parsed = "parseDateTime64BestEffortOrNull(" ~ column ~ ", 3, 'UTC')" -%}
  if(match({{ column }}, {{ timestamp_pattern() }})
     AND (NOT (startsWith({{ column }}, '1969-') OR startsWith({{ column }}, '1970-01-01') OR startsWith({{ column }}, '2149-'))
          OR {{ parsed }} BETWEEN toDateTime64('1970-01-01 00:00:00', 3, 'UTC')
                              AND toDateTime64('2149-06-06 23:59:59.999', 3, 'UTC')),
     {{ parsed }}, null)
{%- endmacro %}

{#- A timestamp field of a row the contract accepted: its rule already matched the pattern, so only
    the parse is left (null stays null). Raw history's views read accepted rows only. -#}
{% macro accepted_timestamp(column) -%}
  parseDateTime64BestEffortOrNull({{ column }}, 3, 'UTC')
{%- endmacro %}

{% macro valid_timestamp(column) -%}
  {{ parse_timestamp(column) }} IS NOT NULL
{%- endmacro %}

{#- Job statuses: the product's spelling (lower case) and the scheduler's (upper case, CANCELED). -#}
{% macro job_status_spellings() %}
  {%- set spellings = [] -%}
  {%- for status in ['pending', 'queued', 'running', 'completed', 'failed', 'cancelled', 'canceled'] -%}
    {%- do spellings.extend([status, status | upper]) -%}
  {%- endfor -%}
  {{ return(spellings) }}
{% endmacro %}

{#- The one status stored everywhere: lower case, `cancelled`. -#}
{% macro normalized_job_status(column) -%}
  if(lower({{ column }}) = 'canceled', 'cancelled', lower({{ column }}))
{%- endmacro %}

{#- Integers the contract bounds (JSON numbers with no fraction; 1.0 is an integer, "1" is not). -#}
{% macro integer_in_range(column, low, high) -%}
  ({{ column }} IS NULL OR (dynamicType({{ column }}) IN ('Int64', 'UInt64', 'Float64')
   AND {{ number_of(column) }} = floor({{ number_of(column) }})
   AND {{ number_of(column) }} BETWEEN {{ low }} AND {{ high }}))
{%- endmacro %}

{#- The value of a Dynamic number column as Float64 (null for anything else, never an error). -#}
{% macro number_of(column) -%}
  coalesce(toFloat64({{ column }}.Int64), toFloat64({{ column }}.UInt64), {{ column }}.Float64)
{%- endmacro %}

{% macro envelope_rules(event_type, strings) %}
  {%- set utf8 = [] -%}
  {%- for column in strings -%}{%- do utf8.append('isValidUTF8(ifNull(' ~ column ~ ", ''))") -%}{%- endfor -%}
  {{ return([
    ('text_is_utf8', utf8 | join(' AND '), 'a field holds bytes that are not UTF-8'),
    ('event_id_is_required', "event_id IS NOT NULL AND event_id != ''", 'event_id is missing or empty'),
    ('event_time_is_iso8601', valid_timestamp('event_time'), 'event_time is missing or not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset'),
    ('event_type_is_' ~ event_type, "event_type = '" ~ event_type ~ "'", "event_type is not '" ~ event_type ~ "'"),
    ('event_name_is_required', "event_name IS NOT NULL AND event_name != ''", 'event_name is missing or empty'),
  ]) }}
{% endmacro %}

{% macro required_rule(column) %}
  {{ return((column ~ '_is_required', column ~ " IS NOT NULL AND " ~ column ~ " != ''", column ~ ' is missing or empty')) }}
{% endmacro %}

{% macro optional_time_rule(column) %}
  {{ return((column ~ '_is_iso8601', column ~ ' IS NULL OR ' ~ valid_timestamp(column), column ~ ' is not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset')) }}
{% endmacro %}

{% macro names_rule(names) %}
  {%- set listed = "'" ~ names | join("', '") ~ "'" -%}
  {{ return(('event_name_is_known', 'event_name IN (' ~ listed ~ ')', 'event_name is not one of ' ~ names | join(', '))) }}
{% endmacro %}

{#-
  The JSON type of a telemetry field, read from its raw text ('' when absent). simdjson hands an
  integer beyond 64 bits over as a string; bare_big_integer tells it from one.
-#}
{% macro raw_is(field, kind) -%}
  {%- set raw = "JSONExtractRaw(message, '" ~ field ~ "')" -%}
  {%- if kind == 'string' -%} (startsWith({{ raw }}, '"') AND NOT {{ bare_big_integer("'" ~ field ~ "'", raw, 'message') }})
  {%- elif kind == 'number' -%} (match({{ raw }}, '^-?[0-9]') OR {{ bare_big_integer("'" ~ field ~ "'", raw, 'message') }})
  {%- elif kind == 'boolean' -%} {{ raw }} IN ('true', 'false')
  {%- endif -%}
{%- endmacro %}

{#- A telemetry attribute of a JSON type, or absent. -#}
{% macro attribute_rule(name, kind) %}
  {{ return((name ~ '_is_a_' ~ kind, "NOT JSONHas(message, '" ~ name ~ "') OR " ~ raw_is(name, kind),
             name ~ ' is not a JSON ' ~ kind)) }}
{% endmacro %}

{% macro contract_rules(topic) %}
  {%- set data = "toJSONString(Data)" -%}
  {%- if topic == 'workflows' -%}
    {{ return(envelope_rules('workflow', landing_string_fields(topic)) + [
      names_rule(['created', 'updated', 'terminated', 'deleted']),
      required_rule('user_id'),
      required_rule('workflow_id'),
      required_rule('kind'),
    ]) }}
  {%- elif topic == 'jobs' -%}
    {%- set spellings = "'" ~ job_status_spellings() | join("', '") ~ "'" -%}
    {%- set status = normalized_job_status('status') -%}
    {{ return(envelope_rules('job', landing_string_fields(topic)) + [
      names_rule(['created', 'started', 'completed', 'failed', 'cancelled']),
      required_rule('user_id'),
      required_rule('workflow_id'),
      required_rule('job_id'),
      ('status_is_known', 'status IN (' ~ spellings ~ ')',
       'status is not one of pending, queued, running, completed, failed, cancelled (lower case, or upper case; CANCELED too)'),
      ('status_matches_event_name',
       "(event_name = 'created' AND " ~ status ~ " IN ('pending', 'queued')) OR (event_name = 'started' AND "
       ~ status ~ " = 'running') OR (event_name IN ('completed', 'failed', 'cancelled') AND " ~ status ~ " = event_name)",
       'status does not match event_name (created: pending or queued; started: running; the others their own name)'),
      optional_time_rule('scheduled_at'),
      optional_time_rule('started_at'),
      optional_time_rule('completed_at'),
      ('started_job_has_started_at',
       "event_name NOT IN ('started', 'completed') OR started_at IS NOT NULL",
       'a started or completed job event needs started_at'),
      ('finished_job_has_its_times',
       "event_name NOT IN ('completed', 'failed') OR (completed_at IS NOT NULL AND (started_at IS NULL OR "
       ~ parse_timestamp('completed_at') ~ " >= " ~ parse_timestamp('started_at') ~ "))",
       'a completed or failed job event needs completed_at, not before started_at'),
    ]) }}
  {%- elif topic == 'job_logs' -%}
    {{ return(envelope_rules('job_log', landing_string_fields(topic)) + [
      names_rule(['created']),
      required_rule('user_id'),
      required_rule('workflow_id'),
      required_rule('job_id'),
      ('count_is_a_positive_integer', integer_in_range('count', 1, 4294967295), 'count must be an integer from 1 to 4294967295'),
      ('stream_is_not_empty', "stream IS NULL OR stream != ''", 'stream is empty'),
      ('sequence_is_a_non_negative_integer', integer_in_range('sequence', 0, 9007199254740991),
       'sequence must be an integer from 0 to 9007199254740991'),
    ]) }}
  {%- elif topic == 'analytics' -%}
    {%- set strings = landing_string_fields(topic) -%}
    {%- set utf8 = [] -%}
    {%- for column in strings -%}{%- do utf8.append('isValidUTF8(ifNull(' ~ column ~ ", ''))") -%}{%- endfor -%}
    {{ return([
      ('text_is_utf8', utf8 | join(' AND '), 'a field holds bytes that are not UTF-8'),
      required_rule('UserID'),
      required_rule('WorkflowID'),
      ('EventType_is_known', "EventType IN ('WORKFLOWS', 'JOBS', 'LOGS')", 'EventType is not one of WORKFLOWS, JOBS, LOGS'),
      ('Data_is_an_object', 'Data IS NOT NULL', 'Data is missing or not a JSON object'),
      ('WORKFLOWS_have_a_kind',
       "EventType != 'WORKFLOWS' OR (JSONType(" ~ data ~ ", 'kind') = 'String' AND JSONExtractString(" ~ data ~ ", 'kind') != '')",
       'a WORKFLOWS event needs a non-empty string Data.kind'),
      ('JOBS_have_a_duration',
       "EventType != 'JOBS' OR (JSONType(" ~ data ~ ", 'job_execution_duration') IN ('Int64', 'UInt64', 'Double')"
       ~ " AND JSONExtractFloat(" ~ data ~ ", 'job_execution_duration') BETWEEN 0 AND 1000000000)",
       'a JOBS event needs Data.job_execution_duration, seconds from 0 to 1000000000'),
      ('LOGS_have_a_count',
       "EventType != 'LOGS' OR (JSONType(" ~ data ~ ", 'count') IN ('Int64', 'UInt64')"
       ~ " AND JSONExtractFloat(" ~ data ~ ", 'count') BETWEEN 1 AND 4294967295)",
       'a LOGS event needs an integer Data.count from 1 to 4294967295'),
    ]) }}
  {%- elif topic == 'telemetry' -%}
    {#- No rule's text may hold "TO <database>.<table>" in capitals: dbt-clickhouse reads a view's
        target from the last such words of its query, and `analytics migrate` then stops. -#}
    {{ return([
      ('message_is_not_empty', "message != ''",
       'the message is empty (telemetry lands whole, one JSON object a row: insert it with (message) FORMAT JSONAsString)'),
      ('message_is_an_object', "isValidUTF8(message) AND isValidJSON(message) AND JSONType(message) = 'Object'",
       'the message is not a JSON object in UTF-8, nested at most 1024 levels deep, its numbers within a Float64 (1e400 is not)'),
      ('keys_are_unique', 'length(JSONExtractKeys(message)) = length(arrayDistinct(JSONExtractKeys(message)))',
       'the message has a duplicate key'),
      ('event_id_is_a_string', raw_is('event_id', 'string') ~ " AND JSONExtractString(message, 'event_id') != ''", 'event_id is missing, empty or not a string'),
      ('event_time_is_iso8601',
       raw_is('event_time', 'string') ~ " AND " ~ valid_timestamp("JSONExtractString(message, 'event_time')"),
       'event_time is missing or not an ISO 8601 time from 1970-01-01 to 2149-06-06 (UTC) with Z or an offset'),
      ('event_type_is_a_telemetry_type',
       raw_is('event_type', 'string') ~ " AND match(JSONExtractString(message, 'event_type'), '^[a-z][a-z0-9_]*$')"
       ~ " AND JSONExtractString(message, 'event_type') NOT IN ('workflow', 'job', 'job_log')",
       'event_type is missing or not a lower-case identifier other than workflow, job, job_log'),
      ('event_name_is_a_string', raw_is('event_name', 'string') ~ " AND JSONExtractString(message, 'event_name') != ''", 'event_name is missing, empty or not a string'),
      attribute_rule('service_name', 'string'),
      attribute_rule('service_version', 'string'),
      attribute_rule('service_commit', 'string'),
      attribute_rule('install_id', 'string'),
      attribute_rule('user_id', 'string'),
      attribute_rule('is_dev', 'boolean'),
      attribute_rule('value', 'number'),
      ('metric_has_a_value', "JSONExtractString(message, 'event_type') != 'metric' OR JSONHas(message, 'value')", 'a metric event needs a value'),
    ]) }}
  {%- else -%}
    {{ exceptions.raise_compiler_error('no contract for topic ' ~ topic) }}
  {%- endif -%}
{% endmacro %}

{#- A rule's expression, never null (a null would neither throw nor pass). -#}
{% macro rule_holds(rule) -%} ifNull(({{ rule[1] }}), 0) {%- endmacro %}

{#-
  The rows of a landing table that satisfy the contract, given `_violation` (contract_violation
  below): a WHERE condition. Each rule is evaluated once, in `_violation`; one throwIf fails an
  HTTP insert naming its first refused row (its event id) and the rule it breaks (the intake
  answers with that message), while rows from Kafka are filtered, never thrown for. A row sent over HTTP
  may not set the Kafka position or parse error (the `_` columns): a row that has them is taken
  as Kafka's, and would be filtered into a dead letter instead of refused, or, without an
  EventKey, counted once per position instead of once per send.

  throwIf takes only a constant message, so the message is a scalar subquery over the view's
  source: in a materialized view that reads the inserted block, evaluated once per block, before
  the rows are (ClickHouse's behaviour since 21.12). One throwIf instead of one per rule, each
  analysed again for every insert: planning the jobs raw view fell from 22 to 15 ms.
-#}
{% macro contract_holds(topic) -%}
  {%- set refused = 'NOT ' ~ from_kafka() ~ ' AND (' ~ kafka_columns_set() ~ " OR _violation != '')" -%}
  throwIf({{ refused }}, (
      select concat('{{ topic }} event ', refusal.1, ' refused, ', refusal.2)
      from (
          select any(({{ event_named(topic) }}, if({{ kafka_columns_set() }},
              'no_kafka_columns: {{ kafka_column_names() | join(', ') }} are set by Kafka ingest, never by a sender',
              _violation))) as refusal
          from {{ ref(topic ~ '_checked') }}
          where {{ refused }}
      )
  )) = 0
      and _violation = ''
{%- endmacro %}

{#- Any of the columns only Kafka ingest fills. -#}
{% macro kafka_columns_set() -%}
  (_topic IS NOT NULL OR _partition IS NOT NULL OR _offset IS NOT NULL OR _timestamp_ms IS NOT NULL
   OR _raw_message IS NOT NULL OR _error != '')
{%- endmacro %}

{#- An event in a refusal: its id quoted (its first 128 characters), or that it has none. -#}
{#- A telemetry message that does not parse is named by the id its text holds, if it holds one
    (without control characters, which would end the refusal's text). -#}
{% macro event_named(topic) -%}
  {%- set id_field = {'analytics': 'EventKey', 'telemetry': 'event_id'}.get(topic, 'event_id') -%}
  {%- set telemetry_id -%}
    if(isValidJSON(message), JSONExtractString(message, 'event_id'), extract(message, '"event_id"\\s*:\\s*"((?:[^"\\\\\\x00-\\x1f]|\\\\[^\\x00-\\x1f])*)"'))
  {%- endset -%}
  {%- set id = telemetry_id if topic == 'telemetry' else 'ifNull(' ~ id_field ~ ", '')" -%}
  if({{ id }} = '', 'without an {{ id_field }}', concat('{{ 'with EventKey ' if topic == 'analytics' }}"', leftUTF8({{ id }}, 128), '"'))
{%- endmacro %}

{#- Why a row breaks the contract: the parse error, else the first rule it fails. -#}
{% macro contract_violation(topic) -%}
  multiIf(
    _error != '', _error,
    {%- for rule in contract_rules(topic) %}
    not {{ rule_holds(rule) }}, '{{ rule[0] }}: {{ rule[2] | replace("'", "\\'") }}',
    {%- endfor %}
    ''
  )
{%- endmacro %}
