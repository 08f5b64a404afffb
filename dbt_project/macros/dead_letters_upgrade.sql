{#-
  dead_letters keeps each message's Kafka timestamp (kafka_timestamp), so a keyless scheduler
  event replayed gets the key it would have had, had it landed: read again from Kafka after the
  replay, it counts once. A table from before it gets the column, null for the dead letters it
  holds (replayed, those are known by their position alone, with -1 for the timestamp).
-#}
{% macro upgrade_dead_letters_timestamp() -%}
  {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- set letters = adapter.get_relation(database=none, schema=target.schema, identifier='dead_letters') -%}
    {%- if letters is not none -%}
      {%- set found = run_query("select count() from system.columns where database = '" ~ target.schema
                                ~ "' and table = 'dead_letters' and name = 'kafka_timestamp'") -%}
      {%- if found.columns[0].values()[0] == 0 -%}
        {% do run_query('alter table ' ~ letters ~ ' ' ~ on_cluster()
                        ~ " add column kafka_timestamp Nullable(DateTime64(3, 'UTC')) after offset") %}
        {{ log('added kafka_timestamp to ' ~ letters ~ ' (an earlier version kept no Kafka timestamp)', info=True) }}
      {%- endif -%}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}
