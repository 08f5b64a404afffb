{#- One row per job: its first event to arrive. Counting rows here counts jobs once. -#}
{{ config(
    engine=engine('ReplacingMergeTree'),
    order_by='(user_id, workflow_id, job_id)',
) }}

select
    cast('' as String) as user_id,
    cast('' as String) as workflow_id,
    cast('' as String) as job_id,
    cast(0 as DateTime64(3, 'UTC')) as first_event_time,
    toFixedString('', 16) as dedup_key
where 0
