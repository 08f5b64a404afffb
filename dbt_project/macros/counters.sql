{#-
  The counting rules, once: what one row of each deduplicated raw table adds to the workflow
  counters. The materialized views sum them per block (counters_from), the checks and the
  reconciliation job sum them over the raw history with FINAL (daily_counters_from_raw in
  recompute.sql), so the two cannot count differently.

  Per raw table: `time`, the column whose day a row counts on (and whose time weighs the kind it
  names); `kind`, the workflow kind a row names ('' for none); `measures`, each counter's value
  for one row (measures.sql names them). WORKFLOWS of the analytics topic name a workflow (and its
  kind), JOBS are one finished job each, LOGS add entries.
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

{#-
  A workflow's kind is the one its latest event naming a kind named: the aggregates keep
  (time, kind) under max(), so the latest wins, and of two at one time the larger kind, whatever
  order they arrive in. A row naming none weighs no_kind(), below every event; so do the rows an
  earlier version kept (upgrade_workflow_kind in kind_upgrade.sql), with the kind they had.
  Read it as `tupleElement(max(kind), 2)`.
-#}
{% macro kind_type() -%} SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), String)) {%- endmacro %}

{% macro no_kind() -%} (toDateTime64(0, 3, 'UTC'), '') {%- endmacro %}

{% macro kind_at(time_column, kind) -%}
  {%- if kind == "''" -%}
    {{ no_kind() }}
  {%- else -%}
    if({{ kind }} = '', {{ no_kind() }}, (toDateTime64({{ time_column }}, 3, 'UTC'), toString({{ kind }})))
  {%- endif -%}
{%- endmacro %}

{#-
  Whether a stored kind is behind the raw history's (a rebuild raises it). One an earlier version
  kept, without a time, is left to a rebuild, not reported; one ahead (a scheduler event stored
  twice by racing inserts, its later receipt kept only in the counters) cannot be lowered by one.
-#}
{% macro kind_behind(stored, rebuilt) -%}
  ({{ stored }}.kind < {{ rebuilt }}.kind and tupleElement({{ stored }}.kind, 1) > toDateTime64(0, 3, 'UTC'))
{%- endmacro %}

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
    max({{ kind_at(rule['time'], rule['kind']) }}) as kind,
    {{ counter_times(by_day, rule['time']) }}
    {%- if source == 'workflow_events' and not by_day %}
    maxIfOrNull(event_time, event_name = 'terminated') as terminated_at,
    maxIfOrNull(event_time, event_name = 'deleted') as deleted_at,
    {%- endif %}
    {{ measures(**summed) }}
from {{ ref(source) }}
group by all
{% endmacro %}
