{{ materialization_target_table(ref('workflow_events')) }}

with
accepted as (
    {{ accepted_landing_rows('workflows') }}
),

incoming as (
    select
        assumeNotNull(event_id) as event_id,
        assumeNotNull({{ accepted_timestamp('event_time') }}) as event_time,
        assumeNotNull(event_name) as event_name,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        ifNull(kind, '') as kind,
        {{ kafka_position('workflows') }},
        now64(3, 'UTC') as ingested_at,
        {{ dedup_key('workflows', 'event_id') }} as dedup_key
    from accepted
    limit 1 by dedup_key
)

{% set keys %}select {{ dedup_key('workflows', 'event_id') }} from {{ ref('workflows_checked') }}{% endset %}
{{ first_seen('incoming', keys) }}
