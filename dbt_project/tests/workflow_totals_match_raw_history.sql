{#-
  Every workflow's all-time counters equal the sum of its days rebuilt from the deduplicated raw
  history, and its kind is not behind the one its latest event named (kind_behind). A failing row
  names the workflow: rebuilding any day it has rows on repairs it.
-#}
{{ config(meta={'dagster': {'ref': {'name': 'workflow_totals'}}}) }}

{% call leave_out_workflows_in_flight() %}
with
    stored as (
        select
            user_id,
            workflow_id,
            max(kind) as kind,
            {{ summed_measures() }}
        from {{ ref('workflow_totals') }}
        group by user_id, workflow_id
    ),
    rebuilt as ({{ workflow_totals_rebuilt() }})
select
    user_id,
    workflow_id,
    tupleElement(stored.kind, 2) as stored_kind,
    tupleElement(rebuilt.kind, 2) as rebuilt_kind,
    {{ measures_side_by_side('stored', 'rebuilt') }}
from stored
full outer join rebuilt using (user_id, workflow_id)
where
    {{ measures_differ('stored', 'rebuilt') }}
    or {{ kind_behind('stored', 'rebuilt') }}
{% endcall %}
