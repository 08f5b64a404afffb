{#-
  The counting rules, once: what one row of each deduplicated raw table adds to the workflow
  counters. The materialized views sum them per block (counters_from), the checks and the
  reconciliation job sum them over the raw history with FINAL (daily_counters_from_raw in
  recompute.sql), so the two cannot count differently.

  Per raw table: `time`, the column whose day a row counts on; `kind`, the workflow kind a row
  names ('' for none); `measures`, each counter's value for one row (measures.sql names them).
  WORKFLOWS of the analytics topic name a workflow (and its kind), JOBS are one finished job
  each, LOGS add entries.
-#}
{% macro counting_rules() %}
  {{ return({
      'workflow_events': {
          'time': 'event_time',
          'kind': 'kind',
          'measures': {'workflow_events': '1'},
      },
      'job_first_seen': {
          'time': 'first_event_time',
          'kind': "''",
          'measures': {'jobs': '1'},
      },
      'job_completions': {
          'time': 'ended_at',
          'kind': "''",
          'measures': {
              'jobs_completed': "outcome = 'completed'",
              'jobs_failed': "outcome = 'failed'",
              'jobs_cancelled': "outcome = 'cancelled'",
              'job_execution_seconds': "if(outcome in ('completed', 'failed'), duration_seconds, 0)",
          },
      },
      'job_log_events': {
          'time': 'event_time',
          'kind': "''",
          'measures': {'joblogs': 'count'},
      },
      'analytics_events': {
          'time': 'received_at',
          'kind': "if(event_type = 'WORKFLOWS', kind, '')",
          'measures': {
              'jobs': "event_type = 'JOBS'",
              'job_execution_seconds': "if(event_type = 'JOBS', job_execution_seconds, 0)",
              'joblogs': "if(event_type = 'LOGS', log_count, 0)",
          },
      },
  }) }}
{% endmacro %}

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

{#-
  What a block of `source` adds to the counters: by_day=true groups by the row's day for
  workflow_daily, false gives the all-time row for workflow_totals. Pre-aggregated per key, so a
  batch of N events becomes at most one row per workflow.
-#}
{% macro counters_from(source, by_day) %}
{%- set rule = counting_rules()[source] -%}
{%- set summed = {} -%}
{%- for name, value in rule['measures'].items() -%}
  {%- do summed.update({name: 'sum(' ~ value ~ ')'}) -%}
{%- endfor %}
select
    {{ counter_keys(by_day, rule['time']) }}
    max({{ rule['kind'] }}) as kind,
    {{ counter_times(by_day, rule['time']) }}
    {%- if source == 'workflow_events' and not by_day %}
    maxIfOrNull(event_time, event_name = 'terminated') as terminated_at,
    maxIfOrNull(event_time, event_name = 'deleted') as deleted_at,
    {%- endif %}
    {{ measures(**summed) }}
from {{ ref(source) }}
group by all
{% endmacro %}
