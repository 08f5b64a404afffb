{#- Every key the first-seen gate has let through (see macros/first_seen.sql). Kept forever. -#}
{{ config(engine='EmbeddedRocksDB()', primary_key='key') }}

select toFixedString('', 16) as key
where 0
