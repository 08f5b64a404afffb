{#-
  One place decides what a table engine is on this topology: a single node (embedded chDB or one
  ClickHouse server) or a cluster (var `cluster`), where MergeTree engines become Replicated* with
  the server's default replica path, and DDL runs ON CLUSTER.
-#}

{% macro clustered() %}
  {{ return(var('cluster', '') | length > 0) }}
{% endmacro %}

{% macro on_cluster() -%}
  {%- if clustered() -%} on cluster {{ var('cluster') }} {%- endif -%}
{%- endmacro %}

{#- engine('AggregatingMergeTree') or engine('ReplacingMergeTree', 'ingested_at') -#}
{% macro engine(family, args='') -%}
  {%- if clustered() and family.endswith('MergeTree') -%}
    Replicated{{ family }}({{ args }})
  {%- else -%}
    {{ family }}({{ args }})
  {%- endif -%}
{%- endmacro %}

{#- Settings shared by the aggregate tables that serve point lookups. -#}
{% macro aggregate_settings() %}
  {{ return({'index_granularity': var('aggregate_index_granularity')}) }}
{% endmacro %}

{#- The engine of `<table>_all`: every shard's `table`, sharded by user (the models in distributed/). -#}
{% macro distributed_engine(table) -%}
  Distributed('{{ var("cluster") }}', currentDatabase(), '{{ table }}', cityHash64(user_id))
{%- endmacro %}
