{#-
  Each job's current state (job_current) and how a table of an earlier version becomes this one.

  The latest event wins, and when two share a timestamp the later lifecycle stage does. Both go
  into one Int64, `job_position`: the event's milliseconds since the epoch times eight, plus its
  stage (0 to 3). An argMax state over an Int64 costs an insert half of what one over the
  (time, stage) tuple earlier versions compared did (docs/performance.md, "Where a large block's time goes").
-#}

{% macro job_position(event_time, event_name) -%}
  toUnixTimestamp64Milli({{ event_time }}) * 8 + transform(
      {{ event_name }}, ['created', 'started', 'completed', 'failed', 'cancelled'], [1, 2, 3, 3, 3], 0)
{%- endmacro %}

{#- What `last_status` weighs an event without a status by: below every event's position, so such an
    event never erases the status before it. -#}
{% macro no_status_position() -%} toInt64(-9223372036854775808) {%- endmacro %}

{#- job_current's rows for the job events of `source` (job_events, or a block of it in the view). -#}
{% macro job_current_rows(source) -%}
select
    user_id,
    workflow_id,
    job_id,
    argMaxState(event_name, position) as last_event,
    argMaxState(status, if(status != '', position, {{ no_status_position() }})) as last_status,
    min(event_time) as first_event_time,
    max(event_time) as last_event_time,
    max(scheduled_at) as scheduled_at,
    max(started_at) as started_at,
    max(completed_at) as completed_at,
    count() as events
from (select *, {{ job_position('event_time', 'event_name') }} as position from {{ source }})
group by user_id, workflow_id, job_id
{%- endmacro %}

{#-
  A job_current of an earlier version (argMax states over a (time, stage) tuple) cannot take the
  view's Int64 states, and ClickHouse cannot convert an aggregate state. Every job event is in
  job_events (it never expires), so the table is rebuilt from it, on a run:

  1. at the run's start (on-run-start), the view feeding it is dropped and the earlier table
     renamed job_current_v1;
  2. the run creates job_current; its post-hook (fill_job_current_from_raw_history) fills it from
     job_events and renames job_current_v1 to job_current_v1_replaced, kept until dropped by hand;
  3. the run then creates the view, which feeds it from then on.

  Only a run that builds both the table and its view does this; one that builds neither leaves the
  earlier pair working, and one that builds only one of them stops before changing anything.

  Stop the ingest while a database is upgraded, as for the names (upgrade_names.sql): an event that
  reaches job_events between the fill and the view's creation does not reach job_current. On a
  cluster the table is a shard's own and the fill must run on each shard, so the run stops instead
  and README ("Upgrading job_current") gives the steps.
-#}

{% macro job_current_state_type(relation) %}
  {%- set found = run_query(
      "select type from system.columns where database = '" ~ relation.schema ~ "' and table = '"
      ~ relation.identifier ~ "' and name = 'last_event'") -%}
  {{ return(found.columns[0].values()[0] if found.rows | length > 0 else '') }}
{% endmacro %}

{% macro upgrade_earlier_job_current() -%}
  {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- set current = adapter.get_relation(database=none, schema=target.schema, identifier='job_current') -%}
    {%- set building = [] -%}
    {%- for model in ['job_current', 'job_current_from_job_events_mv'] -%}
      {%- do building.append('model.' ~ project_name ~ '.' ~ model in selected_resources) -%}
    {%- endfor -%}
    {#- A run that builds neither leaves the earlier table and its view as they are: they still work. -#}
    {%- if current is not none and building != [false, false] and 'Tuple(' in job_current_state_type(current) -%}
      {%- set earlier = current.incorporate(path={'identifier': 'job_current_v1'}) -%}
      {%- set name = current.schema ~ '.' ~ current.identifier -%}
      {%- if building != [true, true] -%}
        {{ exceptions.raise_compiler_error(
            name ~ " was created by an earlier version and is rebuilt by a run that builds both job_current and"
            ~ " job_current_from_job_events_mv; this one selects only one of them. Nothing was changed: run with"
            ~ " both selected (analytics migrate builds everything).") }}
      {%- endif -%}
      {%- if clustered() -%}
        {{ exceptions.raise_compiler_error(
            name ~ " was created by an earlier version (argMax states over a (time, stage) tuple) and must be"
            ~ " rebuilt from job_events on every shard; nothing was changed. Follow README,"
            ~ " \"Upgrading job_current\".") }}
      {%- endif -%}
      {%- if adapter.get_relation(database=none, schema=target.schema, identifier='job_current_v1') is not none -%}
        {{ exceptions.raise_compiler_error(
            name ~ " was created by an earlier version and " ~ earlier.schema ~ "." ~ earlier.identifier
            ~ " exists already (an upgrade that did not finish?); nothing was changed. Drop the one that is"
            ~ " not the earlier job_current, then run again.") }}
      {%- endif -%}
      {%- set feeding = adapter.get_relation(database=none, schema=target.schema,
                                             identifier='job_current_from_job_events_mv') -%}
      {%- if feeding is not none -%}
        {% do adapter.drop_relation(feeding) %}
      {%- endif -%}
      {% do adapter.rename_relation(current, earlier) %}
      {{ log('renamed ' ~ name ~ ' (an earlier version) to ' ~ earlier.identifier ~ '; the run rebuilds '
             ~ current.identifier ~ ' from job_events', info=True) }}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}

{% macro fill_job_current_from_raw_history(relation) -%}
  {%- if execute and not clustered() -%}
    {%- set earlier = adapter.get_relation(database=none, schema=relation.schema, identifier='job_current_v1') -%}
    {%- if earlier is not none -%}
      {%- set replaced = earlier.incorporate(path={'identifier': 'job_current_v1_replaced'}) -%}
      {%- if adapter.get_relation(database=none, schema=relation.schema, identifier=replaced.identifier) is not none -%}
        {{ exceptions.raise_compiler_error(
            replaced.schema ~ "." ~ replaced.identifier ~ " exists (from an earlier upgrade); "
            ~ relation.identifier ~ " was not filled. Drop it, then run again.") }}
      {%- endif -%}
      {#- Emptied first, so that a fill that failed half way can run again without counting twice. -#}
      {% do run_query('truncate table ' ~ relation) %}
      {#- FINAL: an event stored twice (two inserts racing past the gate, README, "Metrics and exactness") counts once. -#}
      {% do run_query('insert into ' ~ relation ~ ' ' ~ job_current_rows(ref('job_events') ~ ' final')) %}
      {% do adapter.rename_relation(earlier, replaced) %}
      {%- set jobs = run_query('select count() from ' ~ relation).columns[0].values()[0] -%}
      {{ log('rebuilt ' ~ relation.schema ~ '.' ~ relation.identifier ~ ' from job_events (' ~ jobs
             ~ ' rows); the earlier table is now ' ~ replaced.identifier ~ ': drop it once the result looks right',
             info=True) }}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}
