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
  {{ return(1) }}
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
    {%- set newest = newest_schema_generation() -%}
    {%- if newest is not none and newest[0] > schema_generation() -%}
      {{ exceptions.raise_compiler_error(
          target.schema ~ ".schema_history: generation " ~ newest[0] ~ " of the schema built this database ("
          ~ newest[1] ~ " UTC), newer than generation " ~ schema_generation() ~ ", which this code builds;"
          ~ " nothing was changed. Run `analytics migrate` of the code that built it (or newer): older code"
          ~ " would put its older views back over the newer tables.") }}
    {%- endif -%}
    {%- if flags.WHICH in ('run', 'build') and schema_history_exists() -%}
      {%- do record_generation_unless_newest(newest) -%}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}

{#-
  on-run-end: a database's first run creates schema_history (a model) and records its generation
  here, once the table exists. A run that finds it recorded already adds nothing.
-#}
{% macro record_schema_generation() -%}
  {%- if execute and flags.WHICH in ('run', 'build') and schema_history_exists() -%}
    {%- do record_generation_unless_newest(newest_schema_generation()) -%}
  {%- endif -%}
  select 1
{%- endmacro %}

{% macro record_generation_unless_newest(newest) %}
  {%- if newest is none or newest[0] != schema_generation() -%}
    {% do run_query('insert into ' ~ target.schema ~ '.schema_history values (now64(3), '
                    ~ schema_generation() ~ ", '" ~ invocation_id ~ "')") %}
    {{ log('the schema is generation ' ~ schema_generation() ~ ' (schema_history)', info=True) }}
  {%- endif -%}
{% endmacro %}

{% macro schema_history_exists() %}
  {%- set found = run_query("select count() from system.tables where database = '" ~ target.schema
                            ~ "' and name = 'schema_history'") -%}
  {{ return(found.columns[0].values()[0] > 0) }}
{% endmacro %}

{#- (generation, migrated at) of the newest generation recorded, or none: none recorded, or no schema_history yet. -#}
{% macro newest_schema_generation() %}
  {%- if not schema_history_exists() -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set newest = run_query('select generation, toString(migrated_at) from ' ~ target.schema
                             ~ '.schema_history order by generation desc, migrated_at desc limit 1') -%}
  {%- if newest.rows | length == 0 -%}
    {{ return(none) }}
  {%- endif -%}
  {{ return((newest.rows[0][0], newest.rows[0][1])) }}
{% endmacro %}
