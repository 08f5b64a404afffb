{#- With Kafka-engine ingest: what the job_logs topic delivered that breaks the contract. -#}
{{ config(materialized='materialized_view', catchup=false, enabled=var('ingest') == 'kafka') }}
{{ materialization_target_table(ref('dead_letters')) }}

select
    _topic as topic,
    _partition as partition,
    _offset as offset,
    if(_raw_message != '', _raw_message, formatRowNoNewline('JSONEachRow', *)) as raw_message,
    {{ contract_violation('job_logs') }} as error,
    now64(3, 'UTC') as received_at
from {{ ref('job_logs_queue') }}
where not ({{ contract_holds('job_logs') }})
