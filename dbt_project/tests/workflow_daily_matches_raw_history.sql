{#- Every day's counters equal a recomputation from the deduplicated raw history. -#}
with
    stored as ({{ daily_counters_stored() }}),
    recomputed as ({{ daily_counters_from_raw() }})
select
    user_id,
    workflow_id,
    day,
    {%- for name in measure_names() %}
    stored.{{ name }} as stored_{{ name }},
    recomputed.{{ name }} as recomputed_{{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
from stored
full outer join recomputed using (user_id, workflow_id, day)
where
    {%- for name in measure_names() if name != 'joblogs' %}
    stored.{{ name }} != recomputed.{{ name }} or
    {%- endfor %}
    (stored.joblogs != recomputed.joblogs and {{ logs_recomputable('day') }})
