{#- With Kafka-engine ingest: what the jobs topic delivered that breaks the contract. -#}
{{ config(materialized='materialized_view', catchup=false, enabled=var('ingest') == 'kafka') }}
{{ materialization_target_table(ref('dead_letters')) }}

select
    _topic as topic,
    _partition as partition,
    _offset as offset,
    if(_raw_message != '', _raw_message, formatRowNoNewline('JSONEachRow', *)) as raw_message,
    {{ contract_violation('jobs') }} as error,
    now64(3, 'UTC') as received_at
from {{ ref('jobs_queue') }}
where not ({{ contract_holds('jobs') }})
