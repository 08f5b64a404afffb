"""The ClickHouse client layer of the stack's Python: every piece of code that talks to ClickHouse
goes through one of these.

- `http`: the thin HTTP client (urllib3, one pooled connection per thread), for the hot and the
  light paths: the gRPC service's queries (HttpBackend), the Kafka bridge's inserts and the
  producer SDK's ClickHouseSink, which must stay free of the stack's dependencies. A point query
  takes about half the time it takes through clickhouse-connect (README, "Performance": the HTTP front).
- `backend`: HttpBackend, the gRPC service's query backend over `http`.
- `connect`: clickhouse-connect clients, for everything else (operations, Dagster): typed
  results, inserts of Python rows, settings.
"""
