{#- Typed landing rows of the `job_logs` topic: from its messages, or inserted over HTTP (JSONEachRow). -#}
{{ config(engine='Null()') }}

select
    {{ landing_columns('job_logs') }}
where 0
