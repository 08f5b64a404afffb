{#- Typed landing rows of the `jobs` topic: from its messages, or inserted over HTTP (JSONEachRow). -#}
{{ config(engine='Null()') }}

select
    {{ landing_columns('jobs') }}
where 0
