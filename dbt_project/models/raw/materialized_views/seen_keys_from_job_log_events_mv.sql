{#- The gate remembers what reached job_log_events. -#}
{{ materialization_target_table(ref('seen_keys')) }}

select dedup_key as key
from {{ ref('job_log_events') }}
