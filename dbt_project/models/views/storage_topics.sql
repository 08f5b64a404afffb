{#-
  Per topic, the raw history it feeds: events held, the oldest and newest event time still
  held (log lines older than the retention are gone), and the messages dead-lettered from it.
  The analytics topic has no event time: its events count at the time they were received.
  min, max and count come from the parts' own metadata (every raw table is partitioned by its
  time), so this reads no rows; an event two racing inserts both stored (on a ClickHouse server)
  counts twice until a merge, as FINAL, which would read every row, is not used.
-#}
with
raw as (
    {%- for topic, model, time_column in [
        ('workflows', 'workflow_events', 'event_time'),
        ('jobs', 'job_events', 'event_time'),
        ('job_logs', 'job_log_events', 'event_time'),
        ('analytics', 'analytics_events', 'received_at'),
        ('telemetry', 'telemetry_events', 'event_time'),
    ] %}
        select
            '{{ topic }}' as topic,
            '{{ model }}' as raw_table,
            count() as events,
            min({{ time_column }}) as oldest,
            max({{ time_column }}) as newest
        from {{ storage_raw_table(model) }}
        {{- '\n    union all' if not loop.last }}
    {%- endfor %}
),

dead as (
    select
        topic,
        count() as dead_letters,
        max(received_at) as last_dead_letter_at
    from {{ storage_raw_table('dead_letters') }} final
    group by topic
)

select
    if(raw.topic != '', raw.topic, dead.topic) as topic,
    raw.raw_table as raw_table,
    toUInt64(raw.events) as events,
    if(raw.events > 0, raw.oldest, null) as oldest_event_time,
    if(raw.events > 0, raw.newest, null) as newest_event_time,
    toUInt64(ifNull(dead.dead_letters, 0)) as dead_letters,
    if(dead.dead_letters > 0, dead.last_dead_letter_at, null) as last_dead_letter_at
from raw
full outer join dead on dead.topic = concat('{{ var("kafka_topic_prefix") }}', raw.topic)
order by topic
