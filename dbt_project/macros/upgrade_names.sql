{#-
  A database built before the names followed one chain (dbt_project.yml) is brought to them at
  the start of every run, before any model is built; on a database already on these names, or an
  empty one, it changes nothing.

  - a table that holds data is renamed (RENAME TABLE keeps its parts, its TTL and its indexes);
  - a materialized view under an earlier name is dropped first, so nothing writes twice: the run
    then creates its successor, which never catches up (+catchup: false), so no event is counted
    again;
  - a Distributed table under an earlier name is dropped (it holds no data; the run creates the
    new `<table>_all` over the renamed table).

  Stop the ingest while a database is upgraded: an event that arrives between the drop of a view
  and the creation of its successor is not carried through the chain.
-#}

{% macro earlier_table_names() -%}
  {{ return({
      'legacy_events': 'analytics_events',
      'job_log_lines': 'job_log_events',
      'jobs_first_seen': 'job_first_seen',
      'jobs_current': 'job_current',
  }) }}
{%- endmacro %}

{% macro earlier_view_names() -%}
  {{ return([
      'legacy_events_mv', 'job_log_lines_mv', 'jobs_first_seen_mv', 'jobs_current_mv', 'job_events_mv',
      'job_completions_mv', 'workflow_events_mv', 'telemetry_events_mv',
      'dead_letters_from_workflows_mv', 'dead_letters_from_jobs_mv', 'dead_letters_from_job_logs_mv',
      'dead_letters_from_analytics_mv', 'dead_letters_from_telemetry_mv',
      'seen_keys_from_legacy_events_mv', 'seen_keys_from_job_log_lines_mv', 'seen_keys_from_jobs_first_seen_mv',
      'workflow_totals_from_legacy_events_mv', 'workflow_totals_from_job_log_lines_mv',
      'workflow_totals_from_jobs_first_seen_mv',
      'workflow_daily_from_legacy_events_mv', 'workflow_daily_from_job_log_lines_mv',
      'workflow_daily_from_jobs_first_seen_mv',
      'job_duration_daily_from_legacy_events_mv', 'job_log_totals_from_job_log_lines_mv',
      'workflow_events_from_workflows_queue_mv', 'dead_letters_from_workflows_queue_mv',
      'job_events_from_jobs_queue_mv', 'dead_letters_from_jobs_queue_mv',
      'job_log_events_from_job_logs_queue_mv', 'dead_letters_from_job_logs_queue_mv',
      'analytics_events_from_analytics_queue_mv', 'dead_letters_from_analytics_queue_mv',
      'telemetry_events_from_telemetry_queue_mv', 'dead_letters_from_telemetry_queue_mv',
  ]) }}
{%- endmacro %}

{% macro earlier_distributed_names() -%}
  {{ return(['job_log_lines_all', 'jobs_first_seen_all']) }}
{%- endmacro %}

{% macro upgrade_earlier_names() -%}
  {#- Only a run changes the database; `dbt compile` and the like render this and change nothing. -#}
  {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- set database = target.schema -%}
    {%- set existing = [] -%}
    {%- for row in run_query("select name from system.tables where database = '" ~ database ~ "'").rows -%}
      {%- do existing.append(row[0]) -%}
    {%- endfor -%}
    {%- for earlier, current in earlier_table_names().items() -%}
      {%- if earlier in existing and current in existing -%}
        {{ exceptions.raise_compiler_error(
            database ~ "." ~ earlier ~ " (an earlier name) and " ~ database ~ "." ~ current ~ " both exist;"
            ~ " nothing was changed. Keep the one that holds the data under " ~ current
            ~ " and drop the other, then run again.") }}
      {%- endif -%}
    {%- endfor -%}
    {%- for view in earlier_view_names() + earlier_distributed_names() if view in existing -%}
      {% do run_query('drop table if exists ' ~ database ~ '.' ~ view ~ ' ' ~ on_cluster() ~ ' sync') %}
      {{ log('dropped ' ~ database ~ '.' ~ view ~ ' (an earlier name; the run creates its successor)', info=True) }}
    {%- endfor -%}
    {%- for earlier, current in earlier_table_names().items() if earlier in existing -%}
      {% do run_query('rename table ' ~ database ~ '.' ~ earlier ~ ' to ' ~ database ~ '.' ~ current
                      ~ ' ' ~ on_cluster()) %}
      {{ log('renamed ' ~ database ~ '.' ~ earlier ~ ' to ' ~ current, info=True) }}
    {%- endfor -%}
  {%- endif -%}
  select 1
{%- endmacro %}
