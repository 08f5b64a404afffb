{{ config(**landing_config('job_logs')) }}

select
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as job_id,
    cast(null as Nullable(Int64)) as count,
    cast(null as Nullable(String)) as stream,
    cast(null as Nullable(UInt64)) as sequence,
    cast(null as Nullable(String)) as message
    {{ kafka_metadata_columns() }}
where 0
