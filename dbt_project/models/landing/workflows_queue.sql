{#- Typed landing rows of the `workflows` topic: from its messages, or inserted over HTTP (JSONEachRow). -#}
{{ config(engine='Null()') }}

select
    {{ landing_columns('workflows') }}
where 0
