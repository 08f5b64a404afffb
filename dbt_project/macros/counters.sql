{#-
  What each deduplicated raw table adds to the workflow counters; by_day=true groups by the
  event's day for workflow_daily, false gives the all-time row for workflow_totals. Each view's
  block is pre-aggregated per key, so a batch of N events becomes at most one row per workflow.
-#}

{% macro counter_keys(by_day, time_column) -%}
    user_id,
    workflow_id,
    {%- if by_day %}
    toDate({{ time_column }}) as day,
    {%- endif %}
{%- endmacro %}

{% macro counter_times(by_day, time_column) -%}
    {%- if not by_day %}
    minOrNull({{ time_column }}) as first_event_at,
    maxOrNull({{ time_column }}) as last_event_at,
    {%- endif %}
{%- endmacro %}

{% macro counters_from_workflow_events(by_day) %}
select
    {{ counter_keys(by_day, 'event_time') }}
    max(kind) as kind,
    {{ counter_times(by_day, 'event_time') }}
    {%- if not by_day %}
    maxIfOrNull(event_time, event_name = 'terminated') as terminated_at,
    maxIfOrNull(event_time, event_name = 'deleted') as deleted_at,
    {%- endif %}
    {{ measures(workflow_events='count()') }}
from {{ ref('workflow_events') }}
group by all
{% endmacro %}

{% macro counters_from_job_first_seen(by_day) %}
select
    {{ counter_keys(by_day, 'first_event_time') }}
    '' as kind,
    {{ counter_times(by_day, 'first_event_time') }}
    {{ measures(jobs='count()') }}
from {{ ref('job_first_seen') }}
group by all
{% endmacro %}

{% macro counters_from_job_completions(by_day) %}
select
    {{ counter_keys(by_day, 'ended_at') }}
    '' as kind,
    {{ counter_times(by_day, 'ended_at') }}
    {{ measures(
        jobs_completed="countIf(outcome = 'completed')",
        jobs_failed="countIf(outcome = 'failed')",
        jobs_cancelled="countIf(outcome = 'cancelled')",
        job_execution_seconds="sumIf(duration_seconds, outcome in ('completed', 'failed'))",
    ) }}
from {{ ref('job_completions') }}
group by all
{% endmacro %}

{% macro counters_from_job_log_events(by_day) %}
select
    {{ counter_keys(by_day, 'event_time') }}
    '' as kind,
    {{ counter_times(by_day, 'event_time') }}
    {{ measures(joblogs='sum(count)') }}
from {{ ref('job_log_events') }}
group by all
{% endmacro %}

{#- WORKFLOWS name a workflow (and its kind), JOBS are one finished job each, LOGS add entries. -#}
{% macro counters_from_analytics_events(by_day) %}
select
    {{ counter_keys(by_day, 'received_at') }}
    maxIf(kind, event_type = 'WORKFLOWS') as kind,
    {{ counter_times(by_day, 'received_at') }}
    {{ measures(
        jobs="countIf(event_type = 'JOBS')",
        job_execution_seconds="sumIf(job_execution_seconds, event_type = 'JOBS')",
        joblogs="sumIf(log_count, event_type = 'LOGS')",
    ) }}
from {{ ref('analytics_events') }}
group by all
{% endmacro %}
