{#-
  Each generation of the schema a run built, from when (macros/schema_generation.sql): code of an
  older generation refuses to migrate a database a newer one built. A row is added when the
  generation changes; `invocation_id` is dbt's id of that run (its logs and run_results.json).
-#}
{{ config(
    engine=engine('MergeTree'),
    order_by='migrated_at',
) }}

select
    now64(3, 'UTC') as migrated_at,
    toUInt32(0) as generation,
    '' as invocation_id
where 0
