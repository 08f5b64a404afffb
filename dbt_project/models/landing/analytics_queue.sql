{#- The scheduler's pre-aggregated events, in their original field names: from the `analytics`
    topic's messages, or inserted over HTTP (JSONEachRow). `Data` is a JSON object. -#}
{{ config(engine='Null()') }}

select
    {{ landing_columns('analytics') }}
where 0
