{#-
  The counters recomputed from the deduplicated raw history (FINAL) by the counting rules
  (counters.sql), one row per (user, workflow, day). The singular tests compare the aggregates with this, and the
  reconciliation job (`rebuild_days`) writes it back for the days it repairs.

  Raw log lines expire under the retention in force while they age; for days whose lines may be
  gone (under any retention applied since: storage_log_retention's lines_complete_since) the
  stored joblogs are the truth, so `logs_recomputable` says which days can be compared or rebuilt.
-#}

{% macro logs_recomputable(day_expression) -%}
  {{ day_expression }} > toDate((select lines_complete_since from {{ ref('storage_log_retention') }}))
{%- endmacro %}

{% macro daily_counters_from_raw(day_condition='1') %}
select
    user_id,
    workflow_id,
    day,
    max(kind) as kind,
    {{ summed_measures() }}
from (
    {%- for source, rule in counting_rules().items() %}
    select user_id, workflow_id, toDate({{ rule['time'] }}) as day,
        {{ kind_at(rule['time'], rule['kind']) }} as kind,
        {{ measures(**rule['measures']) }}
    from {{ ref(source) }} final
    {{- '\n    union all' if not loop.last }}
    {%- endfor %}
)
where {{ day_condition }}
group by user_id, workflow_id, day
{% endmacro %}

{#- The stored daily counters, one row per key (parts may not be merged yet). -#}
{% macro daily_counters_stored(day_condition='1') %}
select
    user_id,
    workflow_id,
    day,
    max(kind) as kind,
    {{ summed_measures() }}
from {{ ref('workflow_daily') }}
where {{ day_condition }}
group by user_id, workflow_id, day
{% endmacro %}

{#-
  What the aggregates of each (user, workflow, day) should hold: the raw recomputation, except
  joblogs on days whose raw log lines may have expired, where the stored counts stand. The
  reconciliation tests compare the aggregates with this and `rebuild_days` writes it back.
-#}
{% macro daily_counters_rebuilt(day_condition='1') %}
select
    user_id,
    workflow_id,
    day,
    max(kind) as kind,
    {{ summed_measures() }}
from (
    select
        user_id,
        workflow_id,
        day,
        kind,
        {%- for name in measure_names() %}
        {%- if name == 'joblogs' %}
        if({{ logs_recomputable('day') }}, joblogs, 0) as joblogs{{ ',' if not loop.last }}
        {%- else %}
        {{ name }}{{ ',' if not loop.last }}
        {%- endif %}
        {%- endfor %}
    from ({{ daily_counters_from_raw(day_condition) }})
    union all
    select user_id, workflow_id, day, {{ no_kind() }} as kind,
        {{ measures(joblogs='joblogs') }}
    from {{ ref('workflow_daily') }}
    where ({{ day_condition }}) and not ({{ logs_recomputable('day') }})
)
group by user_id, workflow_id, day
having tupleElement(kind, 2) != ''
    {%- for name in measure_names() %}
    or {{ name }} != 0
    {%- endfor %}
{% endmacro %}

{#- workflow_totals' counters as they should be: the sum of every day's rebuilt counters. -#}
{% macro workflow_totals_rebuilt(condition='1') %}
select
    user_id,
    workflow_id,
    max(kind) as kind,
    {{ summed_measures() }}
from ({{ daily_counters_rebuilt(condition) }})
group by user_id, workflow_id
{% endmacro %}

{#- job_duration_daily recomputed: t-digest states of finished jobs' durations per day. -#}
{% macro daily_durations_from_raw(day_condition='1') %}
select
    user_id,
    workflow_id,
    day,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(duration) as duration_seconds_quantiles
from (
    select user_id, workflow_id, toDate(ended_at) as day, duration
    from {{ ref('job_completions') }} final
    where {{ has_a_duration() }}
    union all
    select user_id, workflow_id, toDate(received_at) as day, job_execution_duration as duration
    from {{ ref('analytics_events') }} final
    where event_type = 'JOBS'
)
where {{ day_condition }}
group by user_id, workflow_id, day
{% endmacro %}


{#-
  job_log_totals' row of each job, summed from job log events: ``events`` is job_log_events (the
  view feeding the table sees each inserted block) or its deduplicated history (FINAL, a rebuild).
-#}
{% macro job_log_totals_from(events, condition=none) -%}
select
    user_id,
    workflow_id,
    job_id,
    toUInt64(countIf(is_line)) as lines,
    toUInt64(sum(count)) as entries,
    min(event_time) as first_event_at,
    minIfOrNull(event_time, is_line) as first_line_at,
    maxIfOrNull(event_time, is_line) as last_line_at
from {{ events }}
{%- if condition %}
where {{ condition }}
{%- endif %}
group by user_id, workflow_id, job_id
{% endmacro %}
