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

{#- on-run-start's first hook, and the start of every run-operation that writes (rebuild_days). -#}
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
  {%- endif -%}
  select 1
{%- endmacro %}

{#- (generation, migrated at) of the newest generation recorded, or none: no schema_history yet. -#}
{% macro newest_schema_generation() %}
  {%- set found = run_query("select count() from system.tables where database = '" ~ target.schema
                            ~ "' and name = 'schema_history'") -%}
  {%- if found.columns[0].values()[0] == 0 -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set newest = run_query('select generation, toString(migrated_at) from ' ~ target.schema
                             ~ '.schema_history order by generation desc, migrated_at desc limit 1') -%}
  {%- if newest.rows | length == 0 -%}
    {{ return(none) }}
  {%- endif -%}
  {{ return((newest.rows[0][0], newest.rows[0][1])) }}
{% endmacro %}

{#-
  on-run-end: a run that built schema_history records this code's generation when the newest one
  recorded differs (a restart of `analytics up` adds no row). A run of some models only
  (`dbt run --select ...`) records nothing: it did not build the schema.
-#}
{% macro record_schema_generation(results) -%}
  {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- set built = results | selectattr('node.name', 'equalto', 'schema_history')
                            | selectattr('status', 'equalto', 'success') | list -%}
    {%- set newest = newest_schema_generation() if built else none -%}
    {%- if built and (newest is none or newest[0] != schema_generation()) -%}
      {% do run_query('insert into ' ~ target.schema ~ '.schema_history values (now64(3), '
                      ~ schema_generation() ~ ", '" ~ invocation_id ~ "')") %}
      {{ log('the schema is generation ' ~ schema_generation() ~ ' (schema_history)', info=True) }}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}
