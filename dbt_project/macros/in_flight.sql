{#-
  The workflows an insert may be part-way through. An insert runs its block through the chain of
  views one table after another: for a moment its raw rows are in and the aggregates after them
  are not yet. The tests that compare aggregates with raw history leave these workflows out for
  that moment, so a check run while events arrive reports only real mismatches; once the
  inserts are done every workflow is compared again (on a quiet database, none is left out).

  In flight: a raw row ingested since the oldest insert still running began (system.processes),
  or within the last `reconcile_settle_seconds`, for chains that run outside any query: the Kafka
  engine's background inserts in server mode. analytics_events has no ingest time of its own: its
  received_at is the arrival time over HTTP but Kafka's timestamp from Kafka, so its rows count by
  either that (up to five minutes past now: a producer's clock may run hours ahead) or the time
  their part was written.
-#}

{#- A system table of this server, or of every replica with var cluster. -#}
{% macro system_table(name) -%}
  {%- if var('cluster') -%} clusterAllReplicas('{{ var('cluster') }}', system.{{ name }})
  {%- else -%} system.{{ name }}
  {%- endif -%}
{%- endmacro %}

{#-
  Since when rows may be in flight: the start of the oldest insert still running, else the start
  of this check (an insert that begins while the check plans its reads is in flight too). One
  scalar subquery, which ClickHouse evaluates once in a statement, where it first meets it: every
  copy of it in the statement has that value (leave_out_workflows_in_flight reads it first).
-#}
{% macro in_flight_since() -%}
(select least(
    ifNull(
        (select minOrNull(now64(3, 'UTC') - toIntervalMillisecond(toInt64(elapsed * 1000)))
         from {{ system_table('processes') }} where query_kind = 'Insert' and {{ insert_may_feed_the_schema() }}),
        now64(3, 'UTC')
    ),
    now64(3, 'UTC') - toIntervalMillisecond({{ settle_milliseconds() }})
))
{%- endmacro %}

{#-
  var reconcile_settle_seconds in milliseconds, checked as the setting is (0 to 86400 seconds).
  Given to dbt by hand, a string was repeated a thousand times by `* 1000`: "abc" became 0 seconds
  and "10" a number of 2,000 digits that ClickHouse refused as a syntax error; -1 passed as 0.
-#}
{% macro settle_milliseconds() %}
  {%- set value = var('reconcile_settle_seconds') -%}
  {%- if value is boolean -%}
    {%- set seconds = none -%}
  {%- elif value is number -%}
    {%- set seconds = value -%}
  {%- elif value is string and modules.re.fullmatch('[0-9]{1,9}(\\.[0-9]*)?|\\.[0-9]+', value | trim) -%}
    {%- set seconds = value | trim | float -%}
  {%- else -%}
    {%- set seconds = none -%}
  {%- endif -%}
  {%- if seconds is none or not 0 <= seconds <= 86400 -%}
    {{ exceptions.raise_compiler_error('var reconcile_settle_seconds must be a number of seconds from 0 to 86400, not '
                                        ~ value | tojson) }}
  {%- endif -%}
  {{ return((seconds * 1000) | round | int) }}
{% endmacro %}

{#-
  Whether a running insert (a row of system.processes) may feed the schema's chain: unless its text
  names another database (`insert into other.t`, after any comments; without a database, the
  session's). An hour-long insert elsewhere (an export, another project's load) left out every
  workflow ingested meanwhile, and the checks and the rebuild said nothing of them. Text it cannot
  read counts, as before.
-#}
{% macro insert_may_feed_the_schema() -%}
  (empty(extractGroups(
        query,
        '(?is)^(?:\\s|/\\*.*?\\*/|--[^\\n]*\\n)*insert\\s+into\\s+(?:table\\s+)?(?:(`[^`]+`|"[^"]+"|[A-Za-z_][A-Za-z0-9_]*)\\s*\\.\\s*)?(?:`[^`]+`|"[^"]+"|[A-Za-z_][A-Za-z0-9_]*)'
    ) as target)
    or if(target[1] = '', current_database, trim(both '`"' from target[1])) = '{{ ref('job_events').schema }}')
{%- endmacro %}

{#- The workflows with raw rows in flight (in_flight_since, read once). -#}
{% macro workflows_in_flight() %}
  {%- set analytics = ref('analytics_events') -%}
with {{ in_flight_since() }} as in_flight_since
select distinct user_id, workflow_id
from (
    {%- for source in ('workflow_events', 'job_events', 'job_log_events') %}
    select user_id, workflow_id from {{ ref(source) }} where ingested_at >= in_flight_since
    union all
    {%- endfor %}
    select user_id, workflow_id from {{ analytics }}
    -- Not from a timestamp hours ahead: a producer's clock that runs ahead hid its workflows. now64
    -- is the statement's start, and a row inserted over HTTP while it plans is stamped after it:
    -- a few minutes' grace, or such a row, its part not yet in the list below, was reported.
    where received_at between in_flight_since and now64(3, 'UTC') + toIntervalMinute(5) or _part in (
        select name from {{ system_table('parts') }}
        where database = '{{ analytics.schema }}' and table = '{{ analytics.identifier }}' and active
            and modification_time >= toDateTime(in_flight_since)
    )
)
{% endmacro %}

{#-
  A test's failing rows (the caller's query, keyed by user_id and workflow_id) but those of
  workflows in flight. ClickHouse gives a statement no snapshot across tables: it takes each
  table's parts as it plans the statement, in the order it meets them (a FROM before the rest of
  its query, a join's left side before its right), and evaluates a scalar subquery there too. So
  the in-flight time is read first (the `clock`, before any table of the comparison), and the
  workflows in flight after the comparison has taken its parts: any insert whose rows the
  comparison sees half counted was running when the time was read, or began after it. Read in
  the anti join, after the comparison had taken its parts, the time missed an insert that ended
  in between, and its workflows were reported as mismatches (tests/test_reconciliation_in_flight.py);
  the rebuild's corrections leave workflows in flight out by the same rule.
-#}
{% macro leave_out_workflows_in_flight() %}
select failing.*
from (
    select failing.*
    from (select {{ in_flight_since() }} as in_flight_since) as clock
    cross join (
{{ caller() }}
    ) as failing
) as failing
left anti join ({{ workflows_in_flight() }}) as in_flight using (user_id, workflow_id)
{% endmacro %}
