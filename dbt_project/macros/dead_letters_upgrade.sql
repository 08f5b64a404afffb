{#-
  dead_letters keeps each message's Kafka timestamp (kafka_timestamp), so a keyless scheduler
  event replayed gets the key it would have had, had it landed: read again from Kafka after the
  replay, it counts once. A table from before it gets the column, null for the dead letters it
  holds (replayed, those are known by their position alone, with -1 for the timestamp).
-#}
{% macro upgrade_dead_letters_timestamp() -%}
  {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- set letters = adapter.get_relation(database=none, schema=target.schema, identifier='dead_letters') -%}
    {%- if letters is not none -%}
      {%- set found = run_query("select count() from system.columns where database = '" ~ target.schema
                                ~ "' and table = 'dead_letters' and name = 'kafka_timestamp'") -%}
      {%- if found.columns[0].values()[0] == 0 -%}
        {% do run_query('alter table ' ~ letters ~ ' ' ~ on_cluster()
                        ~ " add column kafka_timestamp Nullable(DateTime64(3, 'UTC')) after offset") %}
        {{ log('added kafka_timestamp to ' ~ letters ~ ' (an earlier version kept no Kafka timestamp)', info=True) }}
      {%- endif -%}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}

{#-
  A message Kafka delivers again (a crash between insert and commit, a rebalance, the group's
  offsets reset, a topic read again) is dead-lettered again, with the time of the redelivery. Each
  dead letter keeps its first arrival: ReplacingMergeTree keeps the row of the highest version, so
  the version is minus the arrival's milliseconds and the earliest row wins (on a tie, the last
  inserted, as without a version). Read with FINAL, a dead letter is one row, at the time it first
  came, and a redelivery is no new dead letter. Writers name only received_at; the column's
  default computes the version (the model's post-hook sets it, as a table created from a SELECT
  has none).
-#}
{% macro first_arrival_version(received_at) -%}
  -toUnixTimestamp64Milli({{ received_at }})
{%- endmacro %}

{% macro dead_letters_version_default(relation) -%}
  alter table {{ relation }} {{ on_cluster() }}
  modify column first_arrival_version default {{ first_arrival_version('received_at') }}
{%- endmacro %}

{#-
  A dead_letters of an earlier version (ReplacingMergeTree without a version: the last arrival
  won; keyed by position alone: a recreated topic's dead letter replaced the old one at its
  position) gets the version and the key in place, on a run: a table of the new shape is created, exchanged with it
  atomically (the views and the bridge write to the new one from then on), given every earlier
  row (the version picks each position's earliest arrival still stored; a merge had already kept
  only the latest) and the earlier table, now dead_letters_v1, is dropped. A run that stopped
  between the exchange and the drop finds dead_letters_v1 and finishes the copy. On a cluster the
  copy must run on each shard: the run stops instead and README ("Upgrading dead_letters") gives
  the steps.
-#}
{% macro upgrade_dead_letters_first_arrival() -%}
  {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- set letters = adapter.get_relation(database=none, schema=target.schema, identifier='dead_letters') -%}
    {%- set earlier = adapter.get_relation(database=none, schema=target.schema, identifier='dead_letters_v1') -%}
    {%- if letters is not none -%}
      {%- set name = letters.schema ~ '.' ~ letters.identifier -%}
      {%- set found = run_query("select count() from system.columns where database = '" ~ letters.schema
                                ~ "' and table = 'dead_letters' and name = 'first_arrival_version'") -%}
      {%- set versioned = found.columns[0].values()[0] > 0 -%}
      {%- if not versioned and clustered() -%}
        {{ exceptions.raise_compiler_error(
            name ~ " was created by an earlier version (the last arrival of a dead letter won, so a redelivered"
            ~ " message looked new) and must be copied into a table of the new shape on every shard; nothing was"
            ~ " changed. Follow README, \"Upgrading dead_letters\".") }}
      {%- endif -%}
      {%- if not versioned and earlier is not none -%}
        {{ exceptions.raise_compiler_error(
            name ~ " was created by an earlier version and " ~ earlier.schema ~ "." ~ earlier.identifier
            ~ " exists already; nothing was changed. Drop the one that is not the earlier dead_letters"
            ~ " (or rename it back to dead_letters), then run again.") }}
      {%- endif -%}
      {%- if not versioned -%}
        {%- set earlier = letters.incorporate(path={'identifier': 'dead_letters_v1'}) -%}
        {#- The model's table (and the setting dbt-clickhouse gives every table it creates), under the
            name the earlier table takes by the exchange below. -#}
        {% do run_query('create table ' ~ earlier ~ ' engine = ' ~ engine('ReplacingMergeTree', 'first_arrival_version')
                        ~ ' order by ((topic, partition, offset, kafka_timestamp))'
                        ~ " settings allow_nullable_key = 1, replicated_deduplication_window = '0'"
                        ~ ' empty as select *, ' ~ first_arrival_version('received_at') ~ ' as first_arrival_version'
                        ~ ' from ' ~ letters) %}
        {% do run_query(dead_letters_version_default(earlier)) %}
        {% do run_query('exchange tables ' ~ letters ~ ' and ' ~ earlier) %}
        {{ log('gave ' ~ name ~ ' a version keeping each dead letter\'s first arrival (an earlier version kept'
               ~ ' the last); copying its rows from ' ~ earlier.identifier, info=True) }}
      {%- endif -%}
      {%- if earlier is not none and not clustered() -%}
        {%- set columns = 'topic, partition, offset, kafka_timestamp, raw_message, error, received_at' -%}
        {% do run_query('insert into ' ~ letters ~ ' (' ~ columns ~ ') select ' ~ columns ~ ' from ' ~ earlier) %}
        {%- set copied = run_query('select count() from ' ~ earlier).columns[0].values()[0] -%}
        {% do adapter.drop_relation(earlier) %}
        {{ log('copied ' ~ copied ~ ' dead letters into ' ~ name ~ ' and dropped ' ~ earlier.identifier, info=True) }}
      {%- endif -%}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}
