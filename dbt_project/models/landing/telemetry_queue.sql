{#
  Telemetry carries arbitrary attributes, which JSONEachRow would drop (it maps keys to columns),
  so each message arrives whole as one string: `INSERT ... FORMAT JSONAsString`.
#}
{{ config(**landing_config('telemetry', format='JSONAsString')) }}

select
    cast('' as String) as message
    {{ kafka_metadata_columns() }}
where 0
