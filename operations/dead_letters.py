"""Dead letters you can act on: what they are (grouped by topic and error) and their replay.

A replay feeds chosen dead letters back through the landing tables, bytes as they came, after the
cause was fixed (a schema change, a contract rule relaxed). With direct ingest (embedded mode) each
message goes into `<topic>_messages` at its own Kafka position, exactly as the bridge inserted it:
the landing view parses it again, a message that now passes counts (once: the first-seen gate
knows its key, and a keyless scheduler event is keyed by that same position) and leaves
dead_letters; one that still fails stays, with its new error. With Kafka-engine ingest (server
mode) `<topic>_messages` is the Kafka table, so the replay produces the messages to the topic
again; the engine takes them in, and those that still fail return as dead letters at their new
offsets. Either way replaying twice counts nothing twice.

`analytics dead-letters [replay]` and Dagster's `replay_dead_letters` job both run these.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from core import names
from core.clickhouse import connect
from core.names import TOPICS, UNDECODABLE_ERROR, messages_table, qualified, sql
from core.settings.schema import SchemaSettings


@dataclass(frozen=True)
class DeadLetterGroup:
    topic: str
    error: str
    messages: int
    first_received: dt.datetime
    last_received: dt.datetime


@dataclass
class ReplayResult:
    selected: int = 0  # dead letters matching the filters
    replayed: int = 0  # fed back through the landing tables (0 on a dry run)
    landed: int = 0  # taken in: they count now and left dead_letters (direct ingest)
    still_failing: int = 0  # dead letters again, with the error of this replay (direct ingest)
    skipped: Counter = field(default_factory=Counter)  # why some could not be replayed
    by_topic: Counter = field(default_factory=Counter)
    produced_to_kafka: bool = False


NEVER_READ = (
    "its bytes were never read (the consumer could not decode its record batch); "
    "they are only on the broker, until its retention"
)


class UnknownTopic(ValueError):
    """A topic asked for that is none of the product's, nor a Kafka topic of one."""


def _filters(topic: str | None, since: dt.datetime | None, settings: SchemaSettings) -> tuple[str, dict]:
    conditions, parameters = ["1"], {}
    if topic and _product_topic(topic, settings) is None:
        # Else a typo would read as "no dead letters".
        raise UnknownTopic(f"no topic {topic!r}; the topics are {', '.join(TOPICS)} (or their Kafka names)")
    if topic:
        conditions.append("(topic = {topic:String} OR topic = {kafka_topic:String})")
        parameters.update(topic=topic, kafka_topic=settings.kafka_topic_prefix + topic)
    if since:
        # Read with FINAL, received_at is a dead letter's first arrival: a redelivery is not new.
        conditions.append("received_at >= {since:DateTime64(3, 'UTC')}")
        parameters["since"] = since.astimezone(dt.UTC).replace(tzinfo=None) if since.tzinfo else since
    return " AND ".join(conditions), parameters


def summarize(
    settings: SchemaSettings, topic: str | None = None, since: dt.datetime | None = None
) -> list[DeadLetterGroup]:
    """The dead letters grouped by topic and error, most frequent first within a topic."""
    where, parameters = _filters(topic, since, settings)
    client = connect.client(settings.clickhouse_connection)
    try:
        result = client.query(
            sql(f"""SELECT topic, error, count() AS messages, min(received_at), max(received_at)
                FROM $dead_letters FINAL WHERE {where}
                GROUP BY topic, error ORDER BY topic, messages DESC, error"""),
            parameters=parameters,
        )
        return [DeadLetterGroup(*row) for row in result.result_rows]
    finally:
        client.close()


def _product_topic(kafka_topic: str, settings: SchemaSettings) -> str | None:
    prefix = settings.kafka_topic_prefix
    name = kafka_topic[len(prefix) :] if kafka_topic.startswith(prefix) else kafka_topic
    if name in TOPICS:
        return name
    # A bridge run with another prefix: the topic's last dotted part names the product topic.
    tail = kafka_topic.rsplit(".", 1)[-1]
    return tail if tail in TOPICS else None


def replay(
    settings: SchemaSettings, topic: str | None = None, since: dt.datetime | None = None, dry_run: bool = False
) -> ReplayResult:
    where, parameters = _filters(topic, since, settings)
    result = ReplayResult()
    client = connect.client(settings.clickhouse_connection)
    try:
        [[started]] = client.query("SELECT now64(3, 'UTC')").result_rows
        letters = client.query(
            sql(f"""SELECT topic, partition, offset, raw_message, kafka_timestamp, error FROM $dead_letters FINAL
                WHERE {where} AND received_at < {{started:DateTime64(3, 'UTC')}} ORDER BY topic, partition, offset"""),
            parameters={**parameters, "started": started},
            column_formats={"raw_message": "bytes"},
        ).result_rows
        result.selected = len(letters)
        batches: dict[str, list] = {}
        for kafka_topic, partition, offset, raw, timestamp, error in letters:
            product = _product_topic(kafka_topic, settings)
            if not raw and error.startswith(UNDECODABLE_ERROR):
                # Fed back, nothing would stand in for its bytes: it became "the message is empty",
                # its reason and where its bytes are lost.
                result.skipped[NEVER_READ] += 1
            elif product is None:
                result.skipped[f"no landing table for topic {kafka_topic!r}"] += 1
            elif partition is None or offset is None:
                result.skipped["no Kafka position"] += 1
            else:
                batches.setdefault(product, []).append((kafka_topic, partition, offset, raw, timestamp))
        for product, rows in batches.items():
            result.by_topic[product] += len(rows)
        if dry_run:
            return result
        # Each message by its position and Kafka timestamp (milliseconds, -1 for none), dead_letters' key.
        messages = [(t, p, o, _milliseconds(ts)) for rows in batches.values() for t, p, o, _, ts in rows]
        if not messages:
            return result
        # The table keeps a message's earliest row: a merge would fold a still-failing message's new
        # row into its old one before it is read. (Stopped here, merges stay stopped until the next
        # replay or a restart of ClickHouse; reads are right meanwhile.)
        client.command(sql("SYSTEM STOP MERGES $dead_letters"))
        try:
            for product, rows in batches.items():
                _replay_topic(client, product, rows, result)
            fresh = _rows_since(client, messages, started)
        finally:
            client.command(sql("SYSTEM START MERGES $dead_letters"))
        _settle(client, messages, started, fresh, result)
        return result
    finally:
        client.close()


_COLUMNS = "topic, partition, offset, kafka_timestamp, raw_message, error, received_at"


def _rows_since(client, messages: list[tuple], started) -> list[tuple]:
    """The newest row of each of these messages written since ``started`` (by the replay)."""
    # Not FINAL: FINAL shows a message's first arrival, the row from before this replay.
    return client.query(
        sql(f"""SELECT {_COLUMNS} FROM $dead_letters
           WHERE received_at >= {{started:DateTime64(3, 'UTC')}}
             AND {_MESSAGE} IN {{messages:Array(Tuple(String, UInt64, UInt64, Int64))}}
           ORDER BY received_at DESC LIMIT 1 BY {_MESSAGE}"""),
        parameters={"started": started, "messages": messages},
        column_formats={"raw_message": "bytes"},
    ).result_rows


def _settle(client, messages: list[tuple], started, fresh: list[tuple], result: ReplayResult) -> None:
    """After a replay: the old rows of the replayed messages go (a message that landed is no dead
    letter any more; one that still fails keeps its row of this replay, ``fresh``, with its error).
    A merge between the replay and the delete may have folded a fresh row into the old one, which
    the delete removes: such a row is written again."""
    if not result.produced_to_kafka:  # in server mode the topic's consumer takes them in later
        result.still_failing = len(fresh)
        result.landed = result.replayed - len(fresh)
    parameters = {"started": started, "messages": messages}
    client.command(
        sql(f"""ALTER TABLE $dead_letters DELETE
           WHERE received_at < {{started:DateTime64(3, 'UTC')}}
             AND {_MESSAGE} IN {{messages:Array(Tuple(String, UInt64, UInt64, Int64))}}"""),
        parameters=parameters,
        settings={"mutations_sync": 2},
    )
    kept = {
        tuple(row)
        for row in client.query(
            sql(f"""SELECT {_MESSAGE} FROM $dead_letters
               WHERE {_MESSAGE} IN {{messages:Array(Tuple(String, UInt64, UInt64, Int64))}}"""),
            parameters=parameters,
        ).result_rows
    }
    lost = [
        [topic, partition, offset, _utc(timestamp), raw, error, _utc(received)]
        for topic, partition, offset, timestamp, raw, error, received in fresh
        if (topic, partition, offset, _milliseconds(timestamp)) not in kept
    ]
    if lost:
        client.insert(qualified("dead_letters"), lost, column_names=_COLUMNS.split(", "))


def _replay_topic(client, product: str, rows: list, result: ReplayResult) -> None:
    [[engine]] = client.query(
        "SELECT engine FROM system.tables WHERE database = {database:String} AND name = {name:String}",
        parameters={"database": names.DATABASE, "name": messages_table(product)},
    ).result_rows
    table = qualified(messages_table(product))
    if engine == "Kafka":  # server mode: an insert produces the messages to the topic again
        client.insert(table, [[raw] for _, _, _, raw, _ in rows], column_names=["payload"])
        result.produced_to_kafka = True
    else:
        client.insert(
            table,
            # At the message's own position and Kafka timestamp: the keys it would have had, had it landed.
            [[raw, topic, partition, offset, _utc(timestamp)] for topic, partition, offset, raw, timestamp in rows],
            column_names=["payload", "_topic", "_partition", "_offset", "_timestamp_ms"],
        )
    result.replayed += len(rows)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# A dead letter's key (the message's position and Kafka timestamp) as a tuple without nulls.
_MESSAGE = (
    "(topic, assumeNotNull(partition), assumeNotNull(offset), ifNull(toUnixTimestamp64Milli(kafka_timestamp), -1))"
)


def _milliseconds(moment: dt.datetime | None) -> int:
    return -1 if moment is None else (_utc(moment) - _EPOCH) // dt.timedelta(milliseconds=1)


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """A time read from a DateTime64 'UTC' column, marked as UTC: clickhouse-connect reads it without
    a zone and inserts a time without one as the machine's local time, which shifted a replayed
    message's Kafka timestamp (its day, and the key a redelivery must meet) off UTC by the offset."""
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
