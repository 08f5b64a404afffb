{#- What the analytics topic delivered from Kafka that cannot be taken in: one dead letter per message. -#}
{{ config(materialized='materialized_view', catchup=false) }}
{{ materialization_target_table(ref('dead_letters')) }}
{{ dead_letters_from('analytics') }}
