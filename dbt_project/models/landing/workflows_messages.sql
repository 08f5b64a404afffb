{#- The `workflows` topic's messages as they came, one row each, with their Kafka position (see macros/landing.sql). -#}
{{ config(**messages_config('workflows')) }}

select
    {{ message_columns() }}
where 0
