{#-
  The schema's generation, and the refusal to build an older one over a newer.

  A database remembers which generation of the schema built it (schema_history). Raise the
  number by one with every change that code built before it would undo or break by migrating
  again: a column renamed, retyped or dropped, a view that writes a new column, a new upgrade step
  in on-run-start. Code of an older generation (a rollback, a second deployment left behind) then
  stops before it changes anything, where it would have put its older views back over the newer
  tables; ingest would have stopped at the first insert the tables no longer fit.
-#}
{% macro schema_generation() %}
  {{ return(2) }}
{% endmacro %}

{#-
  on-run-start's first hook, and the start of every run-operation that writes (rebuild_days,
  adopt_job_log_events_v1): a database a newer generation built is left as it is. A run or build
  that goes on records its generation before it changes anything (the upgrade steps of
  on-run-start run for a selection of models too, as Dagster's runs are), so that code older
  than it is refused from then on, even if this run stops half-way.
-#}
{% macro refuse_newer_schema() -%}
  {%- if execute and flags.WHICH in ('run', 'build', 'run-operation') -%}
    {%- set history = schema_history() -%}
    {%- set newest = newest_schema_generation(history) -%}
    {%- if newest is not none and newest[0] > schema_generation() -%}
      {{ exceptions.raise_compiler_error(
          target.schema ~ ".schema_history: generation " ~ newest[0] ~ " of the schema built this database ("
          ~ newest[1] ~ " UTC), newer than generation " ~ schema_generation() ~ ", which this code builds;"
          ~ " nothing was changed. Run `analytics migrate` of the code that built it (or newer): older code"
          ~ " would put its older views back over the newer tables.") }}
    {%- endif -%}
    {%- if flags.WHICH in ('run', 'build') and history is not none -%}
      {%- do record_generation_unless_newest(history, newest) -%}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}

{#-
  on-run-end: a database's first run creates schema_history (a model) and records its generation
  here, once the table exists. A run that finds it recorded already adds nothing.
-#}
{% macro record_schema_generation() -%}
  {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- set history = schema_history() -%}
    {%- if history is not none -%}
      {%- do record_generation_unless_newest(history, newest_schema_generation(history)) -%}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}

{#- The schema_history table, or none before a first run has made it. -#}
{% macro schema_history() %}
  {{ return(adapter.get_relation(database=none, schema=target.schema, identifier='schema_history')) }}
{% endmacro %}

{#- (generation, migrated at) of the newest generation recorded in ``history``, or none. -#}
{% macro newest_schema_generation(history) %}
  {%- if history is none -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set newest = run_query('select generation, toString(migrated_at) from ' ~ history
                             ~ ' order by generation desc, migrated_at desc limit 1') -%}
  {{ return(none if newest.rows | length == 0 else (newest.rows[0][0], newest.rows[0][1])) }}
{% endmacro %}

{% macro record_generation_unless_newest(history, newest) %}
  {%- if newest is none or newest[0] != schema_generation() -%}
    {% do run_query('insert into ' ~ history ~ ' values (now64(3), ' ~ schema_generation() ~ ", '"
                    ~ invocation_id ~ "')") %}
    {{ log('the schema is generation ' ~ schema_generation() ~ ' (schema_history)', info=True) }}
  {%- endif -%}
{% endmacro %}
