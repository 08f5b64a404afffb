{#- The `analytics` topic's messages as they came, one row each, with their Kafka position (see macros/landing.sql). -#}
{{ config(**messages_config('analytics')) }}

select
    {{ message_columns() }}
where 0
