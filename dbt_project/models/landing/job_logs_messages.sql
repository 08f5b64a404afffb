{#- The `job_logs` topic's messages as they came, one row each, with their Kafka position (see macros/landing.sql). -#}
{{ config(**messages_config('job_logs')) }}

select
    {{ message_columns() }}
where 0
