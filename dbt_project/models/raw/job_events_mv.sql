{{ config(materialized='materialized_view', catchup=false) }}
{{ materialization_target_table(ref('job_events')) }}

with
accepted as (
    -- the contract is checked on the landing columns as delivered, before any renaming below
    select {{ landing_columns() }}
    from {{ ref('jobs_queue') }}
    where {{ contract_holds('jobs') }}
),

incoming as (
    select
        assumeNotNull(event_id) as event_id,
        assumeNotNull(event_time) as event_time,
        assumeNotNull(event_name) as event_name,
        assumeNotNull(user_id) as user_id,
        assumeNotNull(workflow_id) as workflow_id,
        assumeNotNull(job_id) as job_id,
        ifNull(status, '') as status,
        scheduled_at,
        started_at,
        completed_at,
        {{ kafka_position('jobs') }},
        now64(3, 'UTC') as ingested_at,
        {{ dedup_key('jobs', 'event_id') }} as dedup_key
    from accepted
    limit 1 by dedup_key
)

{{ first_seen('incoming') }}
