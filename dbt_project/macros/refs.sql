{#-
  `ref` as dbt's own, without the row limit of `--empty` (and the time filter of `--sample`).

  A model here is a table created once or a view whose SELECT is what each insert runs through;
  none reads data through its refs at build time. `dbt run --empty` renders a ref as
  `(select * from t where false limit 0)`: a materialized view defined over that would still fire
  on t's inserts and pass nothing on, and `FINAL` or a view's target table cannot be a subquery.
  So a ref of the schema's own models (and tests) is always the table itself, and `dbt build
  --empty` builds the schema as `dbt build` does; a model of the user's own folder keeps dbt's
  `--empty` and `--sample`.
-#}
{% macro ref() %}
  {%- set relation = builtins.ref(*varargs, **kwargs) -%}
  {%- if relation is not none and (relation.limit is not none or relation.event_time_filter is not none)
        and in_the_schema(model) -%}
    {%- set relation = relation.replace(limit=none, event_time_filter=none) -%}
  {%- endif -%}
  {{ return(relation) }}
{% endmacro %}

{#- Whether a node is the schema's: a test, or a model of its folders (dbt_project.yml). -#}
{% macro in_the_schema(node) %}
  {%- if node is not defined or node is none or node.resource_type != 'model' -%}
    {{ return(true) }}
  {%- endif -%}
  {{ return(node.fqn | length > 1 and node.fqn[1] in ('landing', 'raw', 'aggregates', 'views')) }}
{% endmacro %}
