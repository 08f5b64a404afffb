{#-
  A job is its user's workflow's job: (user_id, workflow_id, job_id), as every table and the gRPC
  calls name it. The job gates (job_first_seen, job_completions) let each job, and each job's end,
  through once by these keys.

  Earlier versions keyed the gates on (workflow_id, job_id) alone, so a job of a second user whose
  workflow and job ids were the same as another user's was never counted. A database built by such
  a version has the earlier keys in seen_keys; at the start of a run that finds a gate's view still
  on them, the new keys of every job (and ended job) already stored are written to seen_keys, so
  no later event of those jobs counts them again; then the jobs of job_events the earlier keys
  missed go into the gated tables (and through their views into the counters), and the run
  replaces the views (a table without its view, renamed from an earlier name at the run's start,
  is taken the same way).
  Writing a key twice changes nothing, so a run that stops half way can run again. Stop the ingest while a
  database is upgraded, as for the names (upgrade_names.sql): an event the earlier view lets
  through after the keys were written would have only its earlier key.

  On a cluster seen_keys is each node's own, so the keys are written on every node by hand: the
  run stops on a gate view on the earlier keys (README, "Upgrading the job keys" drops them).
-#}

{% macro job_key() -%} {{ dedup_key('user_job', 'user_id', 'workflow_id', 'job_id') }} {%- endmacro %}

{% macro job_end_key() -%} {{ dedup_key('user_job_end', 'user_id', 'workflow_id', 'job_id') }} {%- endmacro %}

{#- The jobs of `source` (job_events, or a block of it in the view) not counted yet: one row each. -#}
{% macro job_first_seen_rows(source, seen_keys=none) -%}
with incoming as (
    select
        user_id,
        workflow_id,
        job_id,
        min(event_time) as first_event_time,
        {{ job_key() }} as dedup_key
    from {{ source }}
    group by user_id, workflow_id, job_id
)

{% set keys %}select {{ job_key() }} from {{ source }}{% endset %}
{{ first_seen('incoming', keys, seen_keys) }}
{%- endmacro %}

{#- The jobs of `source` that ended and whose end is not counted yet: their first end event each. -#}
{% macro job_completions_rows(source, seen_keys=none) -%}
{%- set ends = "event_name in ('completed', 'failed', 'cancelled')" %}
with incoming as (
    select
        user_id,
        workflow_id,
        job_id,
        event_name as outcome,
        started_at,
        if(event_name = 'cancelled', event_time, assumeNotNull(completed_at)) as ended_at,
        {#- A job cancelled, or failed before it started, took no time. #}
        if(event_name = 'cancelled' OR started_at IS NULL, 0,
           toUInt64(intDiv(dateDiff('millisecond', started_at, completed_at), 1000))) as duration_seconds,
        if(event_name = 'cancelled' OR started_at IS NULL, 0, dateDiff('millisecond', started_at, completed_at) / 1000)
            as duration,
        {{ job_end_key() }} as dedup_key
    from {{ source }}
    where {{ ends }}
    order by event_time
    limit 1 by dedup_key
)

{#- Only the jobs that end in this block are looked up: a block mostly holds other stages of jobs. -#}
{% set keys %}select {{ job_end_key() }} from {{ source }} where {{ ends }}{% endset %}
{{ first_seen('incoming', keys, seen_keys) }}
{%- endmacro %}

{#- Each gate: its view, its table, its key, and its rows not counted yet of all job_events. -#}
{% macro job_gates() -%}
  {%- set events, seen = target.schema ~ '.job_events final', target.schema ~ '.seen_keys' -%}
  {{ return([
      ('job_first_seen_from_job_events_mv', 'job_first_seen', job_key(), job_first_seen_rows(events, seen)),
      ('job_completions_from_job_events_mv', 'job_completions', job_end_key(), job_completions_rows(events, seen)),
  ]) }}
{%- endmacro %}

{% macro upgrade_job_keys() -%}
  {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- for view, table, key, missed_rows in job_gates() -%}
      {%- set gate = adapter.get_relation(database=none, schema=target.schema, identifier=table) -%}
      {%- set feeding = run_query(
          "select create_table_query from system.tables where database = '" ~ target.schema
          ~ "' and name = '" ~ view ~ "'") -%}
      {%- set earlier = feeding.rows | length > 0 and "'user_job" not in feeding.columns[0].values()[0] -%}
      {%- if clustered() and earlier -%}
        {{ exceptions.raise_compiler_error(
            target.schema ~ "." ~ view ~ " keys jobs by workflow and job alone (an earlier version) and seen_keys"
            ~ " is each node's own; nothing was changed. Follow README, \"Upgrading the job keys\".") }}
      {%- elif gate is not none and (earlier or feeding.rows | length == 0) and not clustered() -%}
        {#- A table without its view on the current keys: an earlier version's (under this name or,
            renamed at the run's start, under an earlier one). -#}
        {% do run_query('insert into ' ~ target.schema ~ '.seen_keys select ' ~ key ~ ' from ' ~ gate) %}
        {#- The jobs the earlier keys took for another user's: counted now, through the views on the table. -#}
        {#- Counted by the table's rows before and after (its part metadata), not by a second scan of job_events. -#}
        {%- set before = run_query('select count() from ' ~ gate).columns[0].values()[0] -%}
        {% do run_query('insert into ' ~ gate ~ ' ' ~ missed_rows) %}
        {%- set missed = run_query('select count() from ' ~ gate).columns[0].values()[0] - before -%}
        {{ log('wrote the keys of ' ~ gate ~ '\'s rows by user, workflow and job into seen_keys (an earlier'
               ~ ' version keyed them by workflow and job alone), and ' ~ missed ~ ' jobs it had missed into it;'
               ~ ' the run replaces ' ~ view, info=True) }}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  select 1
{%- endmacro %}

{#- A finished job whose duration the percentiles take: completed or failed, after it started
    (cancelled jobs, and jobs that failed before they started, took no time). -#}
{% macro has_a_duration() -%} outcome in ('completed', 'failed') and started_at is not null {%- endmacro %}
