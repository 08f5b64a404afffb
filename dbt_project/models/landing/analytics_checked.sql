{#- The `analytics` topic's landing rows with their verdict (`_violation`), computed once per block (a Null table). -#}
{{ config(engine='Null()') }}

select
    {{ landing_columns('analytics') }},
    cast('' as String) as _violation
where 0
