{#-
  The retention of raw log lines, applied on every run so a changed var takes effect on an
  existing table. Existing parts are not rewritten (they expire as merges and TTL runs see them).
  A TTL is a DateTime, which ends at 2106-02-07 06:28:15 and wraps around past it: a line's end is
  computed on DateTime64 and held at that last second, so a long retention, or a line logged
  after 2106 less the retention, never expires at once (1,000,000 hours would have wrapped to 2003).
-#}
{% macro log_retention() %}
  {{ return(["{{ apply_log_retention(this) }}"]) }}
{% endmacro %}

{% macro apply_log_retention(relation) -%}
  {#- Rendered without a database (dbt compile, parse), it shows the default's statement. -#}
  {%- set before = log_retention_in_force(relation) if execute else none -%}
  {%- set hours = log_retention_to_apply(before) if execute else retention_hours('default_log_retention_hours') -%}
  {#- A part keeps the TTL it was written or merged under: after a longer retention, the next merge
      dropped whole the parts the shorter one had expired, lines the longer one keeps (also after a
      spell of audit mode, which leaves parts their TTL). So a longer retention, or one that ends
      audit mode, recomputes every part's TTL before the ALTER returns; a shorter one leaves parts
      as they are (the housekeeping job applies it). -#}
  {%- set lengthened = before is not none and hours >= 0 and (before < 0 or hours > before) -%}
  {%- if hours >= 0 -%}
    alter table {{ relation }} {{ on_cluster() }}
    modify ttl toDateTime(least(event_time + toIntervalHour({{ hours }}),
                                toDateTime64('2106-02-07 06:28:15', 3, 'UTC')))
    settings materialize_ttl_after_modify = {{ 1 if lengthened else 0 }}{{ ', mutations_sync = 2' if lengthened }}
  {%- elif execute and table_has_ttl(relation) -%}
    alter table {{ relation }} {{ on_cluster() }} remove ttl
  {%- else -%}
    select 'audit mode: {{ relation }} keeps every log line'
  {%- endif -%}
{%- endmacro %}

{% macro table_has_ttl(relation) %}
  {%- set found = run_query(
      "select count() from system.tables where database = '" ~ relation.schema ~ "' and name = '"
      ~ relation.identifier ~ "' and position(create_table_query, ' TTL ') > 0") -%}
  {{ return(found.columns[0].values()[0] > 0) }}
{% endmacro %}

{#-
  The retention this run applies, in hours (-1: audit mode), recorded in log_retention_history
  when it differs from in_force (log_retention_in_force's answer). A var given wins: audit_mode true; else
  log_retention_hours; audit_mode false alone ends audit mode for default_log_retention_hours;
  audit_mode true with log_retention_hours stops the run (the hours were ignored without a word).
  Neither given, the retention in force stays: a run without them (`analytics up` after a
  restart that forgot ANALYTICS_AUDIT_MODE) never ends audit mode or shortens a retention, which
  would remove lines for good. A new table gets default_log_retention_hours.
-#}
{% macro log_retention_to_apply(in_force) %}
  {%- set audit = retention_flag('audit_mode') -%}
  {%- set given = retention_hours('log_retention_hours') -%}
  {%- if audit and given is not none -%}
    {{ exceptions.raise_compiler_error('vars audit_mode true and log_retention_hours ' ~ given
                                        ~ ' contradict each other: give one of them') }}
  {%- endif -%}
  {%- if audit -%}
    {%- set hours = -1 -%}
  {%- elif given is not none -%}
    {%- set hours = given | int -%}
  {%- elif in_force is not none and not (audit is not none and in_force < 0) -%}
    {%- set hours = in_force -%}
  {%- else -%}
    {%- set hours = retention_hours('default_log_retention_hours') -%}
  {%- endif -%}
  {%- if hours != in_force -%}
    {%- if in_force is not none and (in_force < 0 or (hours >= 0 and hours < in_force)) -%}
      {{ log('log retention: ' ~ ('audit mode' if in_force < 0 else in_force ~ ' hours') ~ ' gives way to '
             ~ hours ~ ' hours; lines logged longer ago than that will be removed', info=True) }}
    {%- endif -%}
    {% do run_query('insert into ' ~ ref('log_retention_history') ~ ' values (now64(3), '
                    ~ ('null' if hours < 0 else hours) ~ ')') %}
  {%- endif -%}
  {{ return(hours) }}
{% endmacro %}

{#-
  The retention in force, in hours (-1: audit mode), the last one log_retention_history records.
  A history still empty first gets the TTL the table has now, as in force since 1970 (a TTL set
  by hand in another form counts as 0 hours: any line may be gone); a table without TTL that
  holds lines, from before the history, is in audit mode (nothing of it expires). None: a new table.
-#}
{% macro log_retention_in_force(relation) %}
  {%- set history = ref('log_retention_history') -%}
  {%- set last = run_query('select count(), argMax(ifNull(toInt64(log_retention_hours), -1), applied_at) from '
                           ~ history) -%}
  {%- if last.columns[0].values()[0] > 0 -%}
    {{ return(last.columns[1].values()[0]) }}
  {%- endif -%}
  {%- set found = run_query(
      "select position(create_table_query, ' TTL ') > 0, toUInt32OrZero(" ~ ttl_hours('create_table_query') ~ ")"
      ~ " from system.tables where database = '" ~ relation.schema ~ "' and name = '" ~ relation.identifier ~ "'") -%}
  {%- if found.rows | length > 0 and found.columns[0].values()[0] -%}
    {% do run_query('insert into ' ~ history ~ " values ('1970-01-01 00:00:00', " ~ found.columns[1].values()[0] ~ ')') %}
    {{ return(found.columns[1].values()[0]) }}
  {%- endif -%}
  {%- if run_query('select count() from ' ~ relation).columns[0].values()[0] > 0 -%}
    {% do run_query('insert into ' ~ history ~ " values ('1970-01-01 00:00:00', null)") %}
    {{ return(-1) }}
  {%- endif -%}
  {{ return(none) }}
{% endmacro %}

{#- The hours of a TTL as apply_log_retention sets it (or as earlier versions did,
    `toDateTime(event_time) + toIntervalHour(N)`), from a table's CREATE statement; '' otherwise. -#}
{% macro ttl_hours(create_query) -%}
  extract({{ create_query }}, ' TTL toDateTime\\((?:least\\()?event_time\\)? \\+ toIntervalHour\\((\\d+)\\)')
{%- endmacro %}

{#-
  The retention vars, checked as `analytics` checks its settings: a run given `log_retention_hours:
  "72h"` would otherwise have read 0 hours and removed every line, and `audit_mode: "false"` (a
  string) would have turned audit mode on.
-#}
{% macro retention_hours(name) %}
  {%- set value = var(name, none) -%}
  {%- if value is none -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set text = value | string | trim -%}
  {%- if value is boolean or not modules.re.fullmatch('[0-9]{1,7}', text) or not 1 <= text | int <= 1000000 -%}
    {{ exceptions.raise_compiler_error('var ' ~ name ~ ' must be a whole number of hours from 1 to 1000000, not '
                                        ~ value | tojson) }}
  {%- endif -%}
  {{ return(text | int) }}
{% endmacro %}

{% macro retention_flag(name) %}
  {%- set value = var(name, none) -%}
  {%- if value is none or value is boolean -%}
    {{ return(value) }}
  {%- endif -%}
  {%- set text = value | string | trim | lower -%}
  {%- if text not in ('true', 'false') -%}
    {{ exceptions.raise_compiler_error('var ' ~ name ~ ' must be true or false, not ' ~ value | tojson) }}
  {%- endif -%}
  {{ return(text == 'true') }}
{% endmacro %}
