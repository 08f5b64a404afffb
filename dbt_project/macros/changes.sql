{#-
  The rows a view adds to workflow_changes for an insert into ``source``: each (user, workflow)
  the insert touched, once, with the time it ran. The gRPC serving model polls them.
-#}
{% macro changed_keys(source) -%}
select distinct
    user_id,
    workflow_id,
    now64(6, 'UTC') as changed_at
from {{ source }}
{%- endmacro %}
