{{ config(**landing_config('jobs')) }}

select
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as job_id,
    cast(null as Nullable(String)) as status,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as scheduled_at,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as started_at,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as completed_at
    {{ kafka_metadata_columns() }}
where 0
