{#-
  How much each table of the schema holds: rows, active parts, bytes on disk, compressed and
  uncompressed bytes and their ratio (MergeTree tables, from system.parts), and the TTL in force.
  seen_keys (EmbeddedRocksDB) shows RocksDB's estimate of its keys and size, which is what
  system.tables reports with optimize_trivial_approximate_count_query. Landing tables (Null,
  Kafka) hold nothing and are left out. On a cluster the parts of one replica of every shard add up.
-#}
with
parts as (
    select
        table,
        sum("rows") as "rows",
        count() as parts,
        sum(bytes_on_disk) as bytes_on_disk,
        sum(data_compressed_bytes) as compressed_bytes,
        sum(data_uncompressed_bytes) as uncompressed_bytes
    from {{ storage_system_table('parts') }}
    where database = '{{ this.schema }}' and active
    group by table
),

tables as (
    select
        name as table,
        engine,
        total_rows,
        total_bytes,
        extract(create_table_query, ' TTL (.+?)(?: SETTINGS |$)') as ttl
    from system.tables
    where database = '{{ this.schema }}' and (engine like '%MergeTree' or engine = 'EmbeddedRocksDB')
)

select
    tables.table as table,
    tables.engine as engine,
    toUInt64(if(parts.table != '', parts."rows", ifNull(tables.total_rows, 0))) as "rows",
    toUInt64(ifNull(parts.parts, 0)) as parts,
    toUInt64(if(parts.table != '', parts.bytes_on_disk, ifNull(tables.total_bytes, 0))) as bytes_on_disk,
    toUInt64(ifNull(parts.compressed_bytes, 0)) as compressed_bytes,
    toUInt64(ifNull(parts.uncompressed_bytes, 0)) as uncompressed_bytes,
    if(compressed_bytes > 0, uncompressed_bytes / compressed_bytes, null) as compression_ratio,
    tables.ttl as ttl
from tables
left join parts on tables.table = parts.table
order by table
settings optimize_trivial_approximate_count_query = 1
