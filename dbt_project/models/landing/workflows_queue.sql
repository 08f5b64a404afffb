{{ config(**landing_config('workflows')) }}

select
    cast(null as Nullable(String)) as event_id,
    cast(null as Nullable(DateTime64(3, 'UTC'))) as event_time,
    cast(null as Nullable(String)) as event_type,
    cast(null as Nullable(String)) as event_name,
    cast(null as Nullable(String)) as user_id,
    cast(null as Nullable(String)) as workflow_id,
    cast(null as Nullable(String)) as kind
    {{ kafka_metadata_columns() }}
where 0
