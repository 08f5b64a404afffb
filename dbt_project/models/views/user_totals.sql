{#- The GetUserAnalytics numbers for every user, for ad-hoc SQL. -#}
with workflows as (
    select
        user_id,
        workflow_id,
        sum(jobs) as jobs,
        sum(joblogs) as joblogs,
        sum(job_execution_seconds) as job_execution_seconds
    from {{ ref('workflow_totals') }}
    group by user_id, workflow_id
)

select
    user_id,
    count() as total_workflows,
    sum(jobs) as total_jobs,
    sum(joblogs) as total_joblogs,
    sum(job_execution_seconds) as total_job_execution_duration
from workflows
group by user_id
