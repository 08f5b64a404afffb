{#- What the job_logs topic delivered from Kafka that cannot be taken in: one dead letter per message. -#}
{{ materialization_target_table(ref('dead_letters')) }}
{{ dead_letters_from('job_logs') }}
