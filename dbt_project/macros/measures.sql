{#-
  The counters that workflow_totals and workflow_daily keep, in one order. Every view feeding
  them emits all of them: what it contributes, and 0 for the rest. Counters are signed so the
  reconciliation job can add corrections.
-#}

{% macro measure_names() %}
  {{ return(['workflow_events', 'jobs', 'jobs_completed', 'jobs_failed', 'jobs_cancelled',
             'job_execution_seconds', 'joblogs']) }}
{% endmacro %}

{#- Column definitions for a table: SimpleAggregateFunction(sum, Int64) each. -#}
{% macro measure_columns() -%}
  {%- for name in measure_names() %}
    cast(0 as SimpleAggregateFunction(sum, Int64)) as {{ name }}{{ ',' if not loop.last }}
  {%- endfor %}
{%- endmacro %}

{#- measures(jobs='count()', joblogs='sum(count)'): the given expressions, 0 elsewhere. -#}
{% macro measures() -%}
  {%- for name in measure_names() %}
    toInt64({{ kwargs.get(name, '0') }}) as {{ name }}{{ ',' if not loop.last }}
  {%- endfor %}
{%- endmacro %}

{#- Every counter summed over the group: `toInt64(sum(jobs)) as jobs, ...`. -#}
{% macro summed_measures() -%}
  {%- for name in measure_names() %}
    toInt64(sum({{ name }})) as {{ name }}{{ ',' if not loop.last }}
  {%- endfor %}
{%- endmacro %}

{#- Every counter of two sides beside each other: `stored.jobs as stored_jobs, rebuilt.jobs as rebuilt_jobs, ...`. -#}
{% macro measures_side_by_side(left, right) -%}
  {%- for name in measure_names() %}
    {{ left }}.{{ name }} as {{ left }}_{{ name }},
    {{ right }}.{{ name }} as {{ right }}_{{ name }}{{ ',' if not loop.last }}
  {%- endfor %}
{%- endmacro %}

{#- Whether any counter differs between two sides: `stored.jobs != rebuilt.jobs or ...`. -#}
{% macro measures_differ(left, right) -%}
  {%- for name in measure_names() %}
    {{ left }}.{{ name }} != {{ right }}.{{ name }}{{ ' or' if not loop.last }}
  {%- endfor %}
{%- endmacro %}
