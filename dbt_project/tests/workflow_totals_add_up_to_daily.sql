{#- The all-time counters equal the sum of the daily ones, for every workflow. -#}
{{ config(meta={'dagster': {'ref': {'name': 'workflow_totals'}}}) }}
{% call leave_out_workflows_in_flight() %}
with
    totals as (
        select
            user_id,
            workflow_id,
            {{ summed_measures() }}
        from {{ ref('workflow_totals') }}
        group by user_id, workflow_id
    ),
    days as (
        select
            user_id,
            workflow_id,
            {{ summed_measures() }}
        from {{ ref('workflow_daily') }}
        group by user_id, workflow_id
    )
select
    user_id,
    workflow_id,
    {{ measures_side_by_side('totals', 'days') }}
from totals
full outer join days using (user_id, workflow_id)
where
    {{ measures_differ('totals', 'days') }}
{% endcall %}
