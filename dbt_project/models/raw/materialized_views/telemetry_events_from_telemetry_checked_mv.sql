{{ materialization_target_table(ref('telemetry_events')) }}

with
accepted as (
    {{ accepted_landing_rows('telemetry') }}
),

incoming as (
    select
        JSONExtractString(message, 'event_id') as event_id,
        assumeNotNull({{ accepted_timestamp("JSONExtractString(message, 'event_time')") }}) as event_time,
        JSONExtractString(message, 'event_type') as event_type,
        JSONExtractString(message, 'event_name') as event_name,
        JSONExtractString(message, 'user_id') as user_id,
        JSONExtractString(message, 'service_name') as service_name,
        if(
            {{ raw_is('value', 'number') }},
            toFloat64OrNull(trim(both '"' from JSONExtractRaw(message, 'value'))),
            null
        ) as value,
        cast(message as JSON) as attributes,
        {{ kafka_position('telemetry') }},
        now64(3, 'UTC') as ingested_at,
        {{ dedup_key('telemetry', 'event_id') }} as dedup_key
    from accepted
    limit 1 by dedup_key
)

{% set event_id = "JSONExtractString(message, 'event_id')" %}
{% set keys %}select {{ dedup_key('telemetry', event_id) }} from {{ ref('telemetry_checked') }}{% endset %}
{{ first_seen('incoming', keys) }}
