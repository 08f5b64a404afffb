{#-
  The retention of raw log lines, applied on every run so a changed var takes effect on an
  existing table. Existing parts are not rewritten (they expire as merges and TTL runs see them).
-#}
{% macro log_retention() %}
  {{ return(["{{ apply_log_retention(this) }}"]) }}
{% endmacro %}

{% macro apply_log_retention(relation) -%}
  {%- if not var('audit_mode') -%}
    alter table {{ relation }} {{ on_cluster() }}
    modify ttl toDateTime(event_time) + interval {{ var('log_retention_hours') | int }} hour
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
