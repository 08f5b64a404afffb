{#-
  Every day's counters equal what a rebuild from the deduplicated raw history would write
  (joblogs of days whose raw log lines may have expired excepted), and its kind is not behind the
  raw history's (kind_behind). A failing row names the (user, workflow, day): rebuilding that day
  repairs it (`analytics backfill --day`).
-#}
{{ config(meta={'dagster': {'ref': {'name': 'workflow_daily'}}}) }}

{% call leave_out_workflows_in_flight() %}
with
    stored as ({{ daily_counters_stored() }}),
    rebuilt as ({{ daily_counters_rebuilt() }})
select
    user_id,
    workflow_id,
    day,
    tupleElement(stored.kind, 2) as stored_kind,
    tupleElement(rebuilt.kind, 2) as rebuilt_kind,
    {{ measures_side_by_side('stored', 'rebuilt') }}
from stored
full outer join rebuilt using (user_id, workflow_id, day)
where
    {{ measures_differ('stored', 'rebuilt') }}
    or {{ kind_behind('stored', 'rebuilt') }}
{% endcall %}
