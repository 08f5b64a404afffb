{#- Every job with a completed, failed or cancelled event has exactly one completion row. -#}
{{ config(meta={'dagster': {'ref': {'name': 'job_completions'}}}) }}
{% call leave_out_workflows_in_flight() %}
with
    finished as (
        select distinct user_id, workflow_id, job_id
        from {{ ref('job_events') }}
        where event_name in ('completed', 'failed', 'cancelled')
    ),
    completions as (
        select user_id, workflow_id, job_id, count() as completion_rows
        from {{ ref('job_completions') }} final
        group by user_id, workflow_id, job_id
    )
select user_id, workflow_id, job_id, completions.completion_rows
from finished
full outer join completions using (user_id, workflow_id, job_id)
where completions.completion_rows != 1
{% endcall %}
