{# The scheduler's pre-aggregated events, in their original field names. #}
{{ config(**landing_config('analytics')) }}

select
    cast(null as Nullable(String)) as EventKey,
    cast(null as Nullable(String)) as UserID,
    cast(null as Nullable(String)) as WorkflowID,
    cast(null as Nullable(String)) as EventType,
    cast(null as Nullable(String)) as Data
    {{ kafka_metadata_columns() }}
where 0
