{#-
  job_log_events of an earlier version (ordered by time, no `is_line`) cannot become the current
  table in place: ClickHouse does not change a table's ORDER BY. A run on such a table stops
  before anything is changed (the pre-hook below), and the table is upgraded by hand, with the
  ingest stopped, in three steps (README, "Upgrading job_log_events"):

    RENAME TABLE analytics.job_log_events TO analytics.job_log_events_v1
    analytics migrate                                   -- a new job_log_events, the views on it
    dbt run-operation adopt_job_log_events_v1            -- v1's rows into it, their job totals

  Adopting moves the rows through a staging table and ATTACH PARTITION, so none of the views on
  job_log_events fires: the counters already hold these events. job_log_events_v1 is kept, renamed
  job_log_events_v1_adopted (so a second run cannot adopt it twice); drop it once all looks right.
-#}

{% macro refuse_earlier_job_log_events(relation) -%}
  {%- if execute -%}
    {%- set found = run_query(
        "select count() from system.columns where database = '" ~ relation.schema ~ "' and table = '"
        ~ relation.identifier ~ "'") -%}
    {%- set lines = run_query(
        "select count() from system.columns where database = '" ~ relation.schema ~ "' and table = '"
        ~ relation.identifier ~ "' and name = 'is_line'") -%}
    {%- if found.columns[0].values()[0] > 0 and lines.columns[0].values()[0] == 0 -%}
      {%- set name = relation.schema ~ '.' ~ relation.identifier -%}
      {{ exceptions.raise_compiler_error(
          name ~ " was created by an earlier version (ordered by time, without is_line) and cannot be"
          ~ " changed in place; nothing was changed. With the ingest stopped: RENAME TABLE " ~ name
          ~ " TO " ~ name ~ "_v1, run analytics migrate, then dbt run-operation adopt_job_log_events_v1"
          ~ " (README, \"Upgrading job_log_events\").") }}
    {%- endif -%}
  {%- endif -%}
  select 'job_log_events has the current shape'
{%- endmacro %}

{% macro adopt_job_log_events_v1() %}
  {%- do refuse_newer_schema() -%}  {#- its tables as this code knows them, or nothing -#}
  {%- set target = ref('job_log_events') -%}
  {%- set earlier = target.incorporate(path={'identifier': target.identifier ~ '_v1'}) -%}
  {%- set staging = target.incorporate(path={'identifier': target.identifier ~ '__adopting'}) -%}
  {%- set done = target.incorporate(path={'identifier': target.identifier ~ '_v1_adopted'}) -%}
  {%- set found = run_query("select count() from system.tables where database = '" ~ earlier.schema
                            ~ "' and name = '" ~ earlier.identifier ~ "'").columns[0].values()[0] -%}
  {%- if found == 0 -%}
    {{ exceptions.raise_compiler_error(earlier ~ " does not exist: there is nothing to adopt") }}
  {%- endif -%}
  {% do run_query('drop table if exists ' ~ staging ~ ' ' ~ on_cluster() ~ ' sync') %}
  {% do run_query('create table ' ~ staging ~ ' ' ~ on_cluster() ~ ' as ' ~ target) %}
  {#- An earlier row is a line when it had a message or a sequence: count-only events had neither.
      Read with FINAL: an event stored twice (in two parts not merged yet) is adopted, and counted, once. -#}
  {% do run_query('insert into ' ~ staging ~ ' select event_id, event_time, user_id, workflow_id, job_id, count,'
                  ~ ' stream, sequence, message, message != \'\' or sequence is not null as is_line, kafka_topic,'
                  ~ ' kafka_partition, kafka_offset, kafka_timestamp, ingested_at, dedup_key from ' ~ earlier ~ ' final') %}
  {#- Renamed first, so that running this again cannot adopt the same rows twice. -#}
  {% do run_query('rename table ' ~ earlier ~ ' to ' ~ done ~ ' ' ~ on_cluster()) %}
  {%- set partitions = run_query("select distinct partition_id from system.parts where database = '"
                                 ~ staging.schema ~ "' and table = '" ~ staging.identifier ~ "' and active"
                                 ~ " order by partition_id").columns[0].values() -%}
  {%- for partition in partitions %}
    {% do run_query('alter table ' ~ target ~ ' ' ~ on_cluster() ~ " attach partition id '" ~ partition
                    ~ "' from " ~ staging) %}
  {%- endfor %}
  {% do run_query('insert into ' ~ ref('job_log_totals') ~ ' select user_id, workflow_id, job_id,'
                  ~ ' toUInt64(countIf(is_line)), toUInt64(sum(count)), min(event_time),'
                  ~ ' minIfOrNull(event_time, is_line), maxIfOrNull(event_time, is_line) from ' ~ staging
                  ~ ' group by user_id, workflow_id, job_id') %}
  {%- set adopted = run_query('select count() from ' ~ staging).columns[0].values()[0] -%}
  {% do run_query('drop table if exists ' ~ staging ~ ' ' ~ on_cluster() ~ ' sync') %}
  {{ log('adopted ' ~ adopted ~ ' rows of ' ~ earlier.identifier ~ ' into ' ~ target.identifier ~ ' in '
         ~ partitions | length ~ ' partitions; ' ~ earlier.identifier ~ ' is now ' ~ done.identifier
         ~ ': drop it once the result looks right', info=True) }}
{% endmacro %}

{#- The name this operation had while the table was job_log_lines. -#}
{% macro adopt_job_log_lines_v1() %}
  {{ adopt_job_log_events_v1() }}
{% endmacro %}
