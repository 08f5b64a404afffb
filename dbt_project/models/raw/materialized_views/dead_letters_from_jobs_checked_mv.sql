{#- What the jobs topic delivered from Kafka that cannot be taken in: one dead letter per message. -#}
{{ materialization_target_table(ref('dead_letters')) }}
{{ dead_letters_from('jobs') }}
