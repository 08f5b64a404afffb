"""The Kafka bridge: the Kafka table engine's job, done next to chDB (which cannot run that engine).

For every topic it consumes with the consumer group the Kafka-engine table would use
(``<prefix>_<topic>``), so switching between embedded and server mode keeps offsets meaningful.
It batches by count and time (the engine's max block size and flush interval), inserts each
message's bytes as one RowBinary row of ``analytics.<topic>_messages`` (embedded/bridge/framing.py)
so ClickHouse parses every message on its own, and commits offsets only after the insert
succeeded: at-least-once, like the engine. Redelivered events count once because the schema's
first-seen gate drops keys it has seen.

Every message ends as one landing row or one dead letter: the landing view turns a message it
cannot read, or one that breaks the contract, into a dead letter, and the insert succeeds. Should
ClickHouse still refuse a batch for its data, the batch is split in halves until the refused
messages stand alone, and each is written to ``analytics.dead_letters`` with ClickHouse's error.
Failures about ClickHouse's state are retried with backoff (tenacity), nothing committed meanwhile;
an error code nobody classified is retried a few times, then treated as data, and logged.

The rooms: `config` (what it consumes, from the settings), `consumer` (one topic's consumer:
batches, inserts, retries, commits), `framing` (messages as RowBinary rows), `writer` (the
inserts and ClickHouse's verdict on them), `lag` (consumer lag), `metrics` (Prometheus),
`runner` (every topic's consumers in threads; the component of `analytics up`).
"""
