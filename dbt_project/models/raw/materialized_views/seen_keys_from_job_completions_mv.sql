{#- The gate remembers what reached job_completions. -#}
{{ materialization_target_table(ref('seen_keys')) }}

select dedup_key as key
from {{ ref('job_completions') }}
