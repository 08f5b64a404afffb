{#-
  The event contract of DESIGN.md as named rules, one list per topic.

  Each rule is (name, expression, message). The view that takes a topic's landing rows into raw
  history applies them. With direct ingest a row that breaks a rule fails the whole insert with
  an error naming the rule, so the sender can fix and resend the batch; nothing of it is stored.
  With Kafka-engine landing tables the same rules filter the rows, and the dead-letter view keeps
  the others with the first rule they break: a bad message never blocks its neighbours.
-#}

{% macro envelope_rules(event_type) %}
  {{ return([
    ('event_id_is_required', "event_id IS NOT NULL AND event_id != ''", 'event_id is missing or empty'),
    ('event_time_is_required', "event_time IS NOT NULL", 'event_time is missing or not an ISO 8601 time'),
    ('event_type_is_' ~ event_type, "event_type = '" ~ event_type ~ "'", "event_type is not '" ~ event_type ~ "'"),
    ('event_name_is_required', "event_name IS NOT NULL AND event_name != ''", 'event_name is missing or empty'),
  ]) }}
{% endmacro %}

{% macro required_rule(column) %}
  {{ return((column ~ '_is_required', column ~ " IS NOT NULL AND " ~ column ~ " != ''", column ~ ' is missing or empty')) }}
{% endmacro %}

{% macro names_rule(names) %}
  {%- set listed = "'" ~ names | join("', '") ~ "'" -%}
  {{ return(('event_name_is_known', 'event_name IN (' ~ listed ~ ')', 'event_name is not one of ' ~ names | join(', '))) }}
{% endmacro %}

{% macro contract_rules(topic) %}
  {%- if topic == 'workflows' -%}
    {{ return(envelope_rules('workflow') + [
      names_rule(['created', 'updated', 'terminated', 'deleted']),
      required_rule('user_id'),
      required_rule('workflow_id'),
    ]) }}
  {%- elif topic == 'jobs' -%}
    {{ return(envelope_rules('job') + [
      names_rule(['created', 'started', 'completed', 'failed', 'cancelled']),
      required_rule('user_id'),
      required_rule('workflow_id'),
      required_rule('job_id'),
      ('finished_job_has_its_times',
       "event_name NOT IN ('completed', 'failed') OR (started_at IS NOT NULL AND completed_at IS NOT NULL AND completed_at >= started_at)",
       'a completed or failed job event needs started_at and completed_at, with completed_at >= started_at'),
    ]) }}
  {%- elif topic == 'job_logs' -%}
    {{ return(envelope_rules('job_log') + [
      names_rule(['created']),
      required_rule('user_id'),
      required_rule('workflow_id'),
      required_rule('job_id'),
      ('count_is_positive', 'count IS NULL OR count >= 1', 'count must be an integer >= 1'),
    ]) }}
  {%- elif topic == 'analytics' -%}
    {{ return([
      required_rule('EventKey'),
      required_rule('UserID'),
      required_rule('WorkflowID'),
      ('EventType_is_known', "EventType IN ('WORKFLOWS', 'JOBS', 'LOGS')", 'EventType is not one of WORKFLOWS, JOBS, LOGS'),
      ('Data_is_an_object', "Data IS NULL OR JSONType(Data) = 'Object'", 'Data is not a JSON object'),
      ('JOBS_have_a_duration',
       "EventType != 'JOBS' OR JSONType(ifNull(Data, '{}'), 'job_execution_duration') IN ('Int64', 'UInt64', 'Double')",
       'a JOBS event needs Data.job_execution_duration (seconds)'),
      ('LOGS_have_a_count',
       "EventType != 'LOGS' OR JSONType(ifNull(Data, '{}'), 'count') IN ('Int64', 'UInt64')",
       'a LOGS event needs an integer Data.count'),
    ]) }}
  {%- elif topic == 'telemetry' -%}
    {{ return([
      ('message_is_an_object', "isValidJSON(message) AND JSONType(message) = 'Object'", 'the message is not a JSON object'),
      ('event_id_is_a_string', "JSONType(message, 'event_id') = 'String' AND JSONExtractString(message, 'event_id') != ''", 'event_id is missing, empty or not a string'),
      ('event_time_is_iso8601', "parseDateTime64BestEffortOrNull(JSONExtractString(message, 'event_time'), 3, 'UTC') IS NOT NULL", 'event_time is missing or not an ISO 8601 time'),
      ('event_type_is_a_string', "JSONType(message, 'event_type') = 'String' AND JSONExtractString(message, 'event_type') != ''", 'event_type is missing, empty or not a string'),
      ('event_name_is_a_string', "JSONType(message, 'event_name') = 'String' AND JSONExtractString(message, 'event_name') != ''", 'event_name is missing, empty or not a string'),
    ]) }}
  {%- else -%}
    {{ exceptions.raise_compiler_error('no contract for topic ' ~ topic) }}
  {%- endif -%}
{% endmacro %}

{#- The rows of a landing table that satisfy the contract: a WHERE condition. -#}
{% macro contract_holds(topic) -%}
  {%- set checks = [] -%}
  {%- if var('ingest') == 'kafka' -%}
    {%- do checks.append("_error = ''") -%}
    {%- for rule in contract_rules(topic) -%}{%- do checks.append('(' ~ rule[1] ~ ')') -%}{%- endfor -%}
  {%- else -%}
    {#- throwIf fails the insert (the HTTP intake answers with this message); 0 lets the row pass. -#}
    {%- for rule in contract_rules(topic) -%}
      {%- do checks.append("throwIf(not (" ~ rule[1] ~ "), '" ~ topic ~ " event refused, " ~ rule[0] ~ ": "
                           ~ rule[2] | replace("'", "\\'") ~ "') = 0") -%}
    {%- endfor -%}
  {%- endif -%}
  {{ checks | join('\n      and ') }}
{%- endmacro %}

{#- Why a row breaks the contract: the first rule it fails (Kafka parse errors first). -#}
{% macro contract_violation(topic) -%}
  multiIf(
    _error != '', _error,
    {%- for rule in contract_rules(topic) %}
    not ({{ rule[1] }}), '{{ rule[0] }}: {{ rule[2] | replace("'", "\\'") }}',
    {%- endfor %}
    ''
  )
{%- endmacro %}
