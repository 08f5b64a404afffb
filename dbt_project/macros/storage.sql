{#- A system table of this server, or of one replica of every shard on a cluster. -#}
{% macro storage_system_table(name) -%}
  {%- if clustered() -%}
    cluster('{{ var("cluster") }}', system.{{ name }})
  {%- else -%}
    system.{{ name }}
  {%- endif -%}
{%- endmacro %}

{#- A raw table of this schema, or of every shard on a cluster. -#}
{% macro storage_raw_table(model) -%}
  {%- if clustered() -%}
    cluster('{{ var("cluster") }}', '{{ ref(model).schema }}', '{{ ref(model).identifier }}')
  {%- else -%}
    {{ ref(model) }}
  {%- endif -%}
{%- endmacro %}
