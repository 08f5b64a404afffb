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
