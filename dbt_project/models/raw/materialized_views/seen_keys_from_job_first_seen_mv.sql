{#- The gate remembers what reached job_first_seen. -#}
{{ materialization_target_table(ref('seen_keys')) }}

select dedup_key as key
from {{ ref('job_first_seen') }}
