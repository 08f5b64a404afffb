{#- The gate remembers what reached telemetry_events. -#}
{{ materialization_target_table(ref('seen_keys')) }}

select dedup_key as key
from {{ ref('telemetry_events') }}
