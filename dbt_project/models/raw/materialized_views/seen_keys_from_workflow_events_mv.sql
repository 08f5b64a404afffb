{#- The gate remembers what reached workflow_events. -#}
{{ materialization_target_table(ref('seen_keys')) }}

select dedup_key as key
from {{ ref('workflow_events') }}
