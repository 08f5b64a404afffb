{#- The `job_logs` topic's landing rows with their verdict (`_violation`), computed once per block (a Null table). -#}
{{ config(engine='Null()') }}

select
    {{ landing_columns('job_logs') }},
    cast('' as String) as _violation
where 0
