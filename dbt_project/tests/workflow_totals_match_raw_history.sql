{#-
  Every workflow's all-time counters equal the sum of its days rebuilt from the deduplicated raw
  history. A failing row names the workflow: rebuilding any day it has rows on repairs it.
-#}
{{ config(meta={'dagster': {'ref': {'name': 'workflow_totals'}}}) }}

{% call leave_out_workflows_in_flight() %}
with
    stored as (
        select
            user_id,
            workflow_id,
            {{ summed_measures() }}
        from {{ ref('workflow_totals') }}
        group by user_id, workflow_id
    ),
    rebuilt as ({{ workflow_totals_rebuilt() }})
select
    user_id,
    workflow_id,
    {{ measures_side_by_side('stored', 'rebuilt') }}
from stored
full outer join rebuilt using (user_id, workflow_id)
where
    {{ measures_differ('stored', 'rebuilt') }}
{% endcall %}
