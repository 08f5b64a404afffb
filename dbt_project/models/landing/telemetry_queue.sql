{#
  Telemetry carries arbitrary attributes, which JSONEachRow would drop (it maps keys to columns),
  so each event arrives whole as one string: `INSERT ... (message) FORMAT JSONAsString`.
#}
{{ config(engine='Null()') }}

select
    {{ landing_columns('telemetry') }}
where 0
