{#-
  workflow_totals and workflow_daily of an earlier version kept a workflow's kind as
  SimpleAggregateFunction(max, String): the largest kind it was ever given, not its latest. Now
  they keep (time, kind) under max() (counters.sql, kind_at). At a run's start each such table is
  changed in place, its counters untouched: every row's kind becomes (1970-01-01, kind), below any
  event's time, so it still answers until a later event naming a kind, or a rebuild of the day
  (rebuild.sql raises a stored kind to the raw history's), replaces it.

  Each step is an ALTER of its own (a column a default reads cannot be dropped with it), found
  from the columns there are, so a run stopped half-way goes on where it stopped:

    1. add kind_latest, DEFAULT (1970-01-01, kind);  2. MATERIALIZE COLUMN kind_latest (a mutation,
    waited for);  3. REMOVE DEFAULT;  4. drop kind;  5. rename kind_latest to kind.

  On a cluster the ALTERs run ON CLUSTER (a Replicated table's replicas follow their shard's), and
  the Distributed tables `<table>_all` take the new type. Stop the ingest while a database is
  upgraded, as for the names (upgrade_names.sql): an earlier view's insert of a String kind fails
  until the run has replaced the views.
-#}

{% macro upgrade_workflow_kind() -%}
  {%- if execute and flags.WHICH in ('run', 'build') and kind_views_selected() -%}
    {%- for table in ['workflow_totals', 'workflow_daily'] -%}
      {%- set relation = adapter.get_relation(database=none, schema=target.schema, identifier=table) -%}
      {%- if relation is not none -%}
        {%- do upgrade_kind_of(relation) -%}
      {%- endif -%}
      {%- set everywhere = adapter.get_relation(database=none, schema=target.schema, identifier=table ~ '_all') -%}
      {%- if clustered() and everywhere is not none and kind_columns(everywhere).get('kind', ('', ''))[0] == earlier_kind_type() %}
        {% do run_query('alter table ' ~ everywhere ~ ' ' ~ on_cluster() ~ ' modify column kind ' ~ kind_type()) %}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  select 1
{%- endmacro %}

{#-
  Whether this run replaces the views that write the kind (workflow_<totals|daily>_from_<source>_mv):
  a run that builds none of them (Dagster materialising other assets, say) leaves the earlier
  tables and views working as they are; one that builds only some would leave the others writing a
  String kind into the changed tables, so it stops before changing anything.
-#}
{% macro kind_views_selected() %}
  {%- set views = [] -%}
  {%- for node in graph.nodes.values() if node.resource_type == 'model'
                                         and modules.re.fullmatch('workflow_(totals|daily)_from_[a-z_]+_mv', node.name) -%}
    {%- do views.append(node.unique_id) -%}
  {%- endfor -%}
  {%- set selected = views | select('in', selected_resources) | list -%}
  {%- if selected and selected | length < views | length and earlier_kind_tables() -%}
    {{ exceptions.raise_compiler_error(
        target.schema ~ ".workflow_totals and workflow_daily were created by an earlier version (kind: the largest"
        ~ " a workflow was given) and are changed by a run that builds every view writing them; this one selects "
        ~ selected | length ~ " of " ~ views | length ~ ". Nothing was changed: run with all of them selected"
        ~ " (analytics migrate builds everything).") }}
  {%- endif -%}
  {{ return(selected | length > 0) }}
{% endmacro %}

{#- Whether either table still has the earlier kind (or an upgrade of it stopped half-way). -#}
{% macro earlier_kind_tables() %}
  {%- for table in ['workflow_totals', 'workflow_daily'] -%}
    {%- set relation = adapter.get_relation(database=none, schema=target.schema, identifier=table) -%}
    {%- if relation is not none -%}
      {%- set columns = kind_columns(relation) -%}
      {%- if 'kind_latest' in columns or columns.get('kind', ('', ''))[0] == earlier_kind_type() -%}
        {{ return(true) }}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(false) }}
{% endmacro %}

{% macro earlier_kind_type() -%} SimpleAggregateFunction(max, String) {%- endmacro %}

{#- {name: (type, default_kind)} of the table's columns kind and kind_latest. -#}
{% macro kind_columns(relation) %}
  {%- set found = run_query(
      "select name, type, default_kind from system.columns where database = '" ~ relation.schema
      ~ "' and table = '" ~ relation.identifier ~ "' and name in ('kind', 'kind_latest')") -%}
  {%- set columns = {} -%}
  {%- for name, type, default_kind in found.rows -%}
    {%- do columns.update({name: (type, default_kind)}) -%}
  {%- endfor -%}
  {{ return(columns) }}
{% endmacro %}

{% macro upgrade_kind_of(relation) %}
  {%- set columns = kind_columns(relation) -%}
  {%- set earlier = columns.get('kind', ('', ''))[0] == earlier_kind_type() -%}
  {%- if not earlier and 'kind_latest' not in columns -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set alter = 'alter table ' ~ relation ~ ' ' ~ on_cluster() ~ ' ' -%}
  {%- if 'kind_latest' not in columns %}
    {% do run_query(alter ~ 'add column kind_latest ' ~ kind_type() ~ " default (toDateTime64(0, 3, 'UTC'), kind) after kind") %}
    {%- set columns = kind_columns(relation) -%}
  {%- endif %}
  {%- if columns['kind_latest'][1] != '' %}
    {% do run_query(alter ~ 'materialize column kind_latest settings mutations_sync = 2') %}
    {% do run_query(alter ~ 'modify column kind_latest remove default') %}
  {%- endif %}
  {%- if earlier %}
    {% do run_query(alter ~ 'drop column kind') %}
  {%- endif %}
  {% do run_query(alter ~ 'rename column kind_latest to kind') %}
  {{ log('changed ' ~ relation.schema ~ '.' ~ relation.identifier ~ '.kind to (time, kind), its latest kind (an earlier version kept the largest);'
         ~ ' its rows keep their kind until a later event or a rebuild of their day', info=True) }}
{% endmacro %}
