{#- The gate remembers what reached legacy_events. -#}
{{ config(materialized='materialized_view', catchup=false) }}
{{ materialization_target_table(ref('seen_keys')) }}

select dedup_key as key
from {{ ref('legacy_events') }}
