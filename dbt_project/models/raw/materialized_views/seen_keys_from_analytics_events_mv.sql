{#- The gate remembers what reached analytics_events. -#}
{{ materialization_target_table(ref('seen_keys')) }}

select dedup_key as key
from {{ ref('analytics_events') }}
