{#- The gate remembers what reached jobs_first_seen. -#}
{{ config(materialized='materialized_view', catchup=false) }}
{{ materialization_target_table(ref('seen_keys')) }}

select dedup_key as key
from {{ ref('jobs_first_seen') }}
