{#- With Kafka-engine ingest: what the telemetry topic delivered that breaks the contract. -#}
{{ config(materialized='materialized_view', catchup=false, enabled=var('ingest') == 'kafka') }}
{{ materialization_target_table(ref('dead_letters')) }}
{{ dead_letters_from('telemetry') }}
