{#-
  Backfill: rebuild the day-level aggregates of some days from the deduplicated raw history and
  bring workflow_totals in line. Run by `analytics backfill --day ...` and by Dagster's
  daily_reconciliation asset, both through

    dbt run-operation rebuild_days --args '{days: [2026-11-20], staging_suffix: 1a2b3c4d}'

  Events may arrive while it runs, so every correction is computed from the raw history and the
  stored aggregates in the one statement that writes it, never from a copy taken earlier (an
  event that landed after such a copy was taken was subtracted again: its day came out short,
  and every later rebuild during ingest did the same to the newest events). Workflows an insert
  is part-way through (in_flight.sql) are left out of the counter corrections, as the
  reconciliation checks leave them out; the next run has them right.

  1. The days' rows are built into a staging table shaped like workflow_daily
     (daily_counters_rebuilt), for the keys to announce and the summary.
  2. workflow_totals gets one delta row (correct minus current counters) for each workflow that
     has rows on those days, stored or in the raw history, and whose counters are off.
  3. workflow_daily gets the same per (user, workflow, day) of those days, in one insert: a
     reader sees each day's counters before or after, never half rebuilt. Keys the raw history
     no longer has (summed to zero by their delta rows) are deleted, and so are the
     workflow_totals rows of a workflow left with no raw history and no workflow_daily row at all
     (summed to zero by step 2): user_totals and GetUserAnalytics count every workflow that
     workflow_totals has.
  4. job_duration_daily's rows of those days are deleted and rebuilt from the raw history at
     once: a t-digest cannot be corrected by a delta. Between the two a reader finds no
     percentiles for those days (and a job that ends in that moment can count twice in them).
     Then every key of those days' workflow_daily rows (before and after) and of their deleted
     digests goes into workflow_changes (an insert into workflow_totals or job_duration_daily
     announces its own keys; one into workflow_daily, or a delete, does not), so a serving model
     re-reads the time series and percentiles of their users.
  5. job_log_totals gets one delta row for each job with log events on those days whose counts
     are off its raw history, when none of the job's log events can have expired (as the
     job_log_totals_match_raw_history test decides); a job whose lines may be gone keeps counts
     above its raw history and is raised to it from below.

  On a cluster every statement is the connected shard's (its writes replicate to that shard's
  replicas; its staging tables are that node's), as the reconciliation tests read that shard: each
  shard holds its own users' raw history and aggregates, so each shard is rebuilt on one of its
  replicas. A delete on cluster removed every shard's digests of those days where only this
  shard's were rebuilt, and a staging table on cluster was another shard's rebuild's to drop.

  The daily tables have a partition per month (what a query over a range of days reads), so a
  day is not a partition that could be swapped whole. Running it again changes nothing: every
  delta is zero and the digests are replaced by equal ones.

  ANALYTICS_FAULT_REBUILD_HOLD=<seconds> (tests only) holds the rebuild after step 1 while a
  table named rebuild_hold exists in its database, at most that many seconds, in one-second
  `sleep`s marked `rebuild_held`: a test inserts events in that window and then drops the table.
-#}

{% macro rebuild_days(days, staging_suffix) %}
  {%- do refuse_newer_schema() -%}  {#- its tables as this code knows them, or nothing -#}
  {%- set days = rebuild_day_list(days) -%}
  {%- if not modules.re.fullmatch('[0-9a-z]{1,32}', staging_suffix | string) -%}
    {{ exceptions.raise_compiler_error('staging_suffix must be 1 to 32 lower-case letters or digits') }}
  {%- endif -%}
  {%- set daily = ref('workflow_daily') -%}
  {%- set durations = ref('job_duration_daily') -%}
  {%- set totals = ref('workflow_totals') -%}
  {%- set staged_daily = rebuild_staging_relation(daily, staging_suffix) -%}
  {%- set changes = ref('workflow_changes') -%}
  {%- set replaced_keys = rebuild_staging_relation(changes, staging_suffix) -%}
  {%- set gone_keys = rebuild_staging_relation(daily, staging_suffix ~ 'gone') -%}
  {%- set gone_workflows = rebuild_staging_relation(daily, staging_suffix ~ 'gonewf') -%}
  {%- set in_days = "day in ('" ~ days | join("', '") ~ "')" -%}

  {#- Staging tables a rebuild left when ClickHouse went away under it: callers hold the rebuild
      lock (operations/rebuild_lock.py), so no other rebuild is using them. -#}
  {%- set leftovers = run_query("select name from system.tables where database = '" ~ daily.schema
                                ~ "' and match(name, '__rebuild_[0-9a-z]+$')").rows -%}
  {%- for name in leftovers | map(attribute=0) %}
    {{ log('dropping ' ~ name ~ ', left by a rebuild that did not finish', info=True) }}
    {% do run_query('drop table if exists ' ~ daily.schema ~ '.' ~ name ~ ' sync') %}
  {%- endfor %}
  {%- for target, staging in [(daily, staged_daily), (changes, replaced_keys), (daily, gone_keys),
                            (daily, gone_workflows)] %}
    {% do run_query('drop table if exists ' ~ staging ~ ' sync') %}
    {% do run_query('create table ' ~ staging ~ ' as ' ~ target) %}
  {%- endfor %}
  {% do run_query('insert into ' ~ staged_daily ~ ' ' ~ daily_counters_rebuilt(in_days)) %}
  {%- set hold = namespace(on=true) -%}
  {%- for second in range(env_var('ANALYTICS_FAULT_REBUILD_HOLD', '0') | int) if hold.on %}
    {%- set hold.on = run_query("select count() from system.tables where database = '" ~ daily.schema
                                ~ "' and name = 'rebuild_hold'").columns[0].values()[0] > 0 -%}
    {%- if hold.on %}{% do run_query('select sleep(1) as rebuild_held') %}{% endif %}
  {%- endfor %}

  {#- The totals first: the workflows of these days are still visible in the stored rows. -#}
  {%- set corrections = workflow_totals_corrections(totals, daily, in_days) -%}
  {%- set corrected = run_query('select count() from (' ~ corrections ~ ')').columns[0].values()[0] -%}
  {%- if corrected > 0 %}
    {% do run_query('insert into ' ~ totals ~ ' (user_id, workflow_id, kind, ' ~ measure_names() | join(', ') ~ ') '
                    ~ corrections) %}
  {%- endif %}

  {#- Then the days' counters, from the same stored rows; their keys are announced at the end. -#}
  {% do run_query('insert into ' ~ replaced_keys ~ ' ' ~ changed_keys(daily) ~ ' where ' ~ in_days) %}
  {% do run_query('insert into ' ~ replaced_keys ~ ' ' ~ changed_keys(staged_daily)) %}
  {%- set daily_corrections = workflow_daily_corrections(in_days) -%}
  {%- set days_corrected = run_query('select count() from (' ~ daily_corrections ~ ')').columns[0].values()[0] -%}
  {%- if days_corrected > 0 %}
    {% do run_query('insert into ' ~ daily ~ ' (user_id, workflow_id, day, kind, ' ~ measure_names() | join(', ')
                    ~ ') ' ~ daily_corrections) %}
  {%- endif %}
  {#- Keys gone from the raw history, found in one statement (a delete's condition must not read
      the clock or system tables, which a workflow in flight needs), then deleted. -#}
  {%- set gone -%}
    select user_id, workflow_id, day, kind, {{ measure_names() | join(', ') }}
    from ({{ daily_counters_stored(in_days) }})
    where (user_id, workflow_id, day) not in (select user_id, workflow_id, day from ({{ daily_counters_rebuilt(in_days) }}))
        and (user_id, workflow_id) not in ({{ workflows_in_flight() }})
  {%- endset -%}
  {% do run_query('insert into ' ~ gone_keys ~ ' ' ~ gone) %}
  {%- if run_query('select count() from ' ~ gone_keys).columns[0].values()[0] > 0 %}
    {% do run_query('delete from ' ~ daily ~ ' where ' ~ in_days
                    ~ ' and (user_id, workflow_id, day) in (select user_id, workflow_id, day from ' ~ gone_keys ~ ')') %}
    {#- Of those, the workflows nothing is left of: no raw history on any day (stored log counts of
        days whose lines may have expired included) and no other day's row. -#}
    {%- set of_gone = '(user_id, workflow_id) in (select user_id, workflow_id from ' ~ gone_keys ~ ')' -%}
    {% do run_query('insert into ' ~ gone_workflows ~ ' (user_id, workflow_id) select distinct user_id, workflow_id from '
                    ~ gone_keys ~ ' where (user_id, workflow_id) not in (select user_id, workflow_id from ('
                    ~ workflow_totals_rebuilt(of_gone) ~ ')) and (user_id, workflow_id) not in (select user_id,'
                    ~ ' workflow_id from ' ~ daily ~ ' where ' ~ of_gone ~ ')') %}
    {%- if run_query('select count() from ' ~ gone_workflows).columns[0].values()[0] > 0 %}
      {% do run_query('delete from ' ~ totals ~ ' where (user_id, workflow_id) in (select user_id, workflow_id from '
                      ~ gone_workflows ~ ')') %}
    {%- endif %}
  {%- endif %}

  {% do run_query('insert into ' ~ replaced_keys ~ ' ' ~ changed_keys(durations) ~ ' where ' ~ in_days) %}
  {% do run_query('delete from ' ~ durations ~ ' where ' ~ in_days) %}
  {% do run_query('insert into ' ~ durations ~ ' ' ~ daily_durations_from_raw(in_days)) %}
  {% do run_query('insert into ' ~ changes ~ ' ' ~ changed_keys(replaced_keys)) %}

  {%- set job_log_corrections = job_log_totals_corrections(days) -%}
  {%- set jobs_corrected = run_query('select count() from (' ~ job_log_corrections ~ ')').columns[0].values()[0] -%}
  {%- if jobs_corrected > 0 %}
    {% do run_query('insert into ' ~ ref('job_log_totals') ~ ' (user_id, workflow_id, job_id, lines, entries,'
                    ~ ' first_event_at, first_line_at, last_line_at) ' ~ job_log_corrections) %}
  {%- endif %}

  {%- set summary = {'days': {}, 'workflow_totals_corrected': corrected | int,
                     'workflow_daily_corrected': days_corrected | int,
                     'job_log_totals_corrected': jobs_corrected | int} -%}
  {%- for day in days %}
    {%- set rows = run_query('select count() from ' ~ staged_daily ~ " where day = '" ~ day ~ "'").columns[0].values()[0] -%}
    {%- do summary['days'].update({day: rows | int}) -%}
  {%- endfor %}

  {% do drop_rebuild_staging(staging_suffix) %}
  {#- One line the callers read: `rebuild summary: {"days": {...}, "workflow_totals_corrected": n}`. -#}
  {{ log('rebuild summary: ' ~ tojson(summary), info=True) }}
{% endmacro %}

{#- Delta rows for workflow_totals: the rebuilt totals minus the stored ones, where they differ,
    but for workflows in flight. -#}
{% macro workflow_totals_corrections(totals, daily, in_days) %}
  {%- set affected -%}
    (user_id, workflow_id) in (
        select user_id, workflow_id from {{ daily }} where {{ in_days }}
        union distinct
        select user_id, workflow_id from ({{ daily_counters_from_raw(in_days) }})
    )
  {%- endset -%}
  {%- set stored -%}
      select
          user_id,
          workflow_id,
          max(kind) as kind,
          {{ summed_measures() }}
      from {{ totals }}
      where {{ affected }}
      group by user_id, workflow_id
  {%- endset -%}
  {% call leave_out_workflows_in_flight() %}
  {{ counter_deltas(['user_id', 'workflow_id'], workflow_totals_rebuilt(affected), stored) }}
  {% endcall %}
{% endmacro %}

{#-
  Delta rows for job_log_totals: for each job with log events on these days, its counts from the
  deduplicated raw history minus the stored ones, where they differ, but for workflows in flight.
  A job whose log events may have expired (from its first logged event, as the reconciliation
  test decides) keeps counts above what raw history still holds, and counts below it are raised to
  it: raw history is then a lower bound, and the test reports a count under it whatever its age.
  The times are the job's own: a min or max of the same values changes nothing.
-#}
{% macro job_log_totals_corrections(days) %}
  {% call leave_out_workflows_in_flight() %}
  {%- set totals = ref('job_log_totals') -%}
  {%- set events = ref('job_log_events') -%}
  with
      affected as (
          select distinct user_id, workflow_id, job_id
          from {{ events }}
          where toDate(event_time) in ('{{ days | join("', '") }}')
      ),
      correct as ({{ job_log_totals_from(events ~ ' final', '(user_id, workflow_id, job_id) in affected') }}),
      stored as (
          select user_id, workflow_id, job_id, sum(lines) as lines, sum(entries) as entries, min(first_event_at) as first_event_at
          from {{ totals }}
          where (user_id, workflow_id, job_id) in affected
          group by user_id, workflow_id, job_id
      ),
      compared as (
          select
              user_id,
              workflow_id,
              job_id,
              toInt64(correct.lines) as correct_lines,
              toInt64(stored.lines) as stored_lines,
              toInt64(correct.entries) as correct_entries,
              toInt64(stored.entries) as stored_entries,
              {{ logs_recomputable('toDate(coalesce(stored.first_event_at, correct.first_event_at))') }} as recomputable,
              correct.first_event_at as first_event_at,
              correct.first_line_at as first_line_at,
              correct.last_line_at as last_line_at
          from correct
          left join stored using (user_id, workflow_id, job_id)
      )
  select
      user_id,
      workflow_id,
      job_id,
      if(recomputable, correct_lines, greatest(correct_lines, stored_lines)) - stored_lines as lines,
      if(recomputable, correct_entries, greatest(correct_entries, stored_entries)) - stored_entries as entries,
      first_event_at,
      first_line_at,
      last_line_at
  from compared
  where lines != 0 or entries != 0
  {% endcall %}
{% endmacro %}

{#- Delta rows for workflow_daily: the counters of these days rebuilt from the raw history now minus
    the stored ones, where they differ, but for workflows in flight. -#}
{% macro workflow_daily_corrections(in_days) %}
  {% call leave_out_workflows_in_flight() %}
  {{ counter_deltas(['user_id', 'workflow_id', 'day'], daily_counters_rebuilt(in_days), daily_counters_stored(in_days)) }}
  {% endcall %}
{% endmacro %}

{#-
  The correct counters minus the stored ones, one row per key (then kind, then every measure)
  where any differs, or where the correct kind is later than the stored one (a max() is raised,
  never lowered: a row an earlier version kept, its kind without a time, is replaced so); a key
  only one side has counts as zeros on the other.
-#}
{% macro counter_deltas(keys, correct, stored) %}
  with
      correct as ({{ correct }}),
      stored as ({{ stored }})
  select
      {{ keys | join(', ') }},
      correct.kind as kind,
      {%- for name in measure_names() %}
      correct.{{ name }} - stored.{{ name }} as {{ name }}{{ ',' if not loop.last }}
      {%- endfor %}
  from correct
  full outer join stored using ({{ keys | join(', ') }})
  where
      {{ measures_differ('correct', 'stored') }}
      or correct.kind > stored.kind
{% endmacro %}

{#- Staging tables live next to their targets, named <target>__rebuild_<suffix>. -#}
{% macro rebuild_staging_relation(target, staging_suffix) %}
  {{ return(target.incorporate(path={'identifier': target.identifier ~ '__rebuild_' ~ staging_suffix})) }}
{% endmacro %}

{#- Also run on its own after a failed rebuild, so no staging table is left behind (job_duration_daily's
    is one earlier versions made). -#}
{% macro drop_rebuild_staging(staging_suffix) %}
  {%- for target, suffix in [(ref('workflow_daily'), staging_suffix), (ref('workflow_daily'), staging_suffix ~ 'gone'),
                             (ref('workflow_daily'), staging_suffix ~ 'gonewf'),
                             (ref('job_duration_daily'), staging_suffix), (ref('workflow_changes'), staging_suffix)] %}
    {% do run_query('drop table if exists ' ~ rebuild_staging_relation(target, suffix) ~ ' sync') %}
  {%- endfor %}
{% endmacro %}

{#- The days as ISO dates, checked: they are written into SQL. A day that is not on the calendar or
    that a Date cannot hold is refused, as `analytics backfill` refuses it: ClickHouse read
    '2026-11-31' as 2026-12-01 and '1900-01-01' as 1970-01-01, so another day was rebuilt and
    reported under the name asked for. -#}
{% macro rebuild_day_list(days) %}
  {%- set listed = [days] if days is string else days -%}
  {%- if not listed -%}
    {{ exceptions.raise_compiler_error('rebuild_days needs at least one day') }}
  {%- endif -%}
  {%- set checked = [] -%}
  {%- for day in listed -%}
    {%- set parts = modules.re.fullmatch('([0-9]{4})-([0-9]{2})-([0-9]{2})', day | string) -%}
    {%- if not parts -%}
      {{ exceptions.raise_compiler_error('not a day (YYYY-MM-DD): ' ~ day) }}
    {%- endif -%}
    {%- set year, month = parts.group(1) | int, parts.group(2) | int -%}
    {%- set leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 -%}
    {%- set month_days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] -%}
    {%- if not (1 <= month <= 12 and 1 <= parts.group(3) | int <= month_days[month - 1]) -%}
      {{ exceptions.raise_compiler_error('not a day on the calendar: ' ~ day) }}
    {%- endif -%}
    {%- if not '1970-01-01' <= day | string <= '2149-06-06' -%}
      {{ exceptions.raise_compiler_error(day ~ ': not one of the days the aggregates hold (1970-01-01 to 2149-06-06)') }}
    {%- endif -%}
    {%- do checked.append(day | string) -%}
  {%- endfor -%}
  {{ return(checked | unique | list | sort) }}
{% endmacro %}
