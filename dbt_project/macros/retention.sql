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
  {%- if execute -%} {% do record_log_retention(relation) %} {%- endif -%}
  {%- if not var('audit_mode') -%}
    alter table {{ relation }} {{ on_cluster() }}
    modify ttl toDateTime(least(event_time + toIntervalHour({{ var('log_retention_hours') | int }}),
                                toDateTime64('2106-02-07 06:28:15', 3, 'UTC')))
    settings materialize_ttl_after_modify = 0
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
  log_retention_history gets the retention about to be applied when it differs from the last one
  recorded; a history still empty first gets the TTL the table has now (if any), as in force
  since 1970 (a TTL set by hand in another form counts as 0 hours: any line may be gone).
-#}
{% macro record_log_retention(relation) %}
  {%- set history = ref('log_retention_history') -%}
  {%- set last = run_query('select count(), argMax(ifNull(toInt64(log_retention_hours), -1), applied_at) from '
                           ~ history) -%}
  {%- set recorded = last.columns[0].values()[0] -%}
  {%- set last_hours = last.columns[1].values()[0] if recorded > 0 else none -%}
  {%- if recorded == 0 -%}
    {%- set found = run_query(
        "select position(create_table_query, ' TTL ') > 0, toUInt32OrZero(" ~ ttl_hours('create_table_query') ~ ")"
        ~ " from system.tables where database = '" ~ relation.schema ~ "' and name = '" ~ relation.identifier ~ "'") -%}
    {%- if found.rows | length > 0 and found.columns[0].values()[0] -%}
      {% do run_query('insert into ' ~ history ~ " values ('1970-01-01 00:00:00', " ~ found.columns[1].values()[0] ~ ')') %}
      {%- set last_hours = found.columns[1].values()[0] -%}
    {%- endif -%}
  {%- endif -%}
  {%- set hours = -1 if var('audit_mode') else var('log_retention_hours') | int -%}
  {%- if hours != last_hours -%}
    {% do run_query('insert into ' ~ history ~ ' values (now64(3), ' ~ ('null' if hours < 0 else hours) ~ ')') %}
  {%- endif -%}
{% endmacro %}

{#- The hours of a TTL as apply_log_retention sets it (or as earlier versions did,
    `toDateTime(event_time) + toIntervalHour(N)`), from a table's CREATE statement; '' otherwise. -#}
{% macro ttl_hours(create_query) -%}
  extract({{ create_query }}, ' TTL toDateTime\\((?:least\\()?event_time\\)? \\+ toIntervalHour\\((\\d+)\\)')
{%- endmacro %}
