"""Asset checks on the pipeline's health, read from ClickHouse."""

import json
from dataclasses import asdict, dataclass

import dagster as dg

from core import names
from core.names import qualified, sql
from core.settings.dagster import DagsterSettings
from orchestration.dead_letters.jobs import REPLAY_JOB
from orchestration.resources import ClickHouse

# Each topic's raw-history table and the time column its events carry (the analytics topic's
# events carry no time of their own: their arrival).
TOPIC_TABLES = {topic.name: (topic.raw, topic.time_column) for topic in names.ALL_TOPICS}

FRESHNESS_CHECK = "newest_event_is_recent"
CLOCK_SKEW_MINUTES = 5


def freshness_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=dg.AssetKey(table),
            description=f"The newest event of the `{topic}` topic is at most ANALYTICS_FRESHNESS_MAX_AGE_MINUTES old "
            "(events dated more than a few minutes ahead of now are not counted).",
        )
        for topic, (table, _) in TOPIC_TABLES.items()
    ]


@dg.multi_asset_check(specs=freshness_specs(), can_subset=True, name="topic_freshness")
def topic_freshness(
    context: dg.AssetCheckExecutionContext,
    clickhouse: dg.ResourceParam[ClickHouse],
    settings: dg.ResourceParam[DagsterSettings],
):
    """One query for every selected topic: how old is its newest event?"""
    selected = {key.asset_key.path[-1] for key in context.selected_asset_check_keys}
    topics = {topic: spec for topic, spec in TOPIC_TABLES.items() if spec[0] in selected}
    # An event dated in the future (a producer's clock, a typo) is no sign of life now: it would
    # keep the check green for as long as the topic stays quiet. A few minutes of skew are allowed.
    union = "\nunion all\n".join(
        f"""select '{topic}' as topic, toString(newest_time) as newest,
                   dateDiff('second', newest_time, now64(3, 'UTC')) as age_seconds
            from (
                select maxIfOrNull({column}, {column} <= now64(3, 'UTC') + toIntervalMinute({CLOCK_SKEW_MINUTES}))
                    as newest_time
                from {qualified(table)}
            )"""
        for topic, (table, column) in topics.items()
    )
    limit = settings.freshness_max_age_minutes * 60
    for row in clickhouse.rows(union):
        table = TOPIC_TABLES[row["topic"]][0]
        age = row["age_seconds"]
        yield dg.AssetCheckResult(
            asset_key=dg.AssetKey(table),
            check_name=FRESHNESS_CHECK,
            # A quiet topic is not always a broken one: a warning, not an error.
            passed=age is not None and age <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            description=(f"no {row['topic']} events yet" if age is None else f"newest event {age // 60} minutes old"),
            metadata={
                "topic": row["topic"],
                "newest_event": row["newest"] or "none",
                "age_seconds": age if age is not None else -1,
                "max_age_seconds": limit,
            },
        )


# Blocking: a failed ERROR check also fails the run that ran it, so the health run turns red.
@dg.asset_check(
    asset=dg.AssetKey(names.DEAD_LETTERS),
    name="no_new_dead_letters",
    blocking=True,
    description=(
        "No message was dead-lettered within the last ANALYTICS_DEAD_LETTER_WINDOW_MINUTES. To act on them: "
        "`analytics dead-letters` groups them by topic and error; once the cause is fixed, the "
        "`replay_dead_letters` job (or `analytics dead-letters replay`) feeds them back through the landing tables."
    ),
)
def no_new_dead_letters(
    clickhouse: dg.ResourceParam[ClickHouse], settings: dg.ResourceParam[DagsterSettings]
) -> dg.AssetCheckResult:
    # FINAL: a message Kafka delivered again (a reset of the group's offsets, a crash before the
    # commit) is one dead letter, at its first arrival (dead_letters keeps it), so neither counts twice nor new.
    rows = clickhouse.rows(
        sql("""select topic, count() as messages, toString(max(received_at)) as latest,
                  any(error) as example_error
           from $dead_letters final
           where received_at > now64(3, 'UTC') - toIntervalMinute({window:UInt32})
           group by topic order by topic"""),
        {"window": settings.dead_letter_window_minutes},
    )
    new = sum(row["messages"] for row in rows)
    return dg.AssetCheckResult(
        passed=new == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{new} new dead letters: `analytics dead-letters` shows their errors; after fixing the cause, run "
            f"the `{REPLAY_JOB}` job (or `analytics dead-letters replay`)"
            if new
            else None
        ),
        metadata={
            "new_dead_letters": new,
            "replay_job": REPLAY_JOB,
            "replay_command": "analytics dead-letters replay [--topic T] [--since TIME] [--dry-run]",
            "window_minutes": settings.dead_letter_window_minutes,
            "by_topic": dg.MetadataValue.json(rows),
        },
    )


@dataclass(frozen=True)
class PartitionLag:
    consumer: str  # the consumer group (embedded bridge) or the Kafka table (server mode)
    topic: str
    partition: int
    lag: int


def lags_from_rdkafka_stat(consumer: str, rdkafka_stat: str) -> list[PartitionLag]:
    """The per-partition lag in librdkafka's statistics, as system.kafka_consumers carries them."""
    if not rdkafka_stat:
        return []
    stats = json.loads(rdkafka_stat)
    lags = []
    for topic, topic_stats in stats.get("topics", {}).items():
        for partition, partition_stats in topic_stats.get("partitions", {}).items():
            lag = partition_stats.get("consumer_lag", -1)
            # partition -1 is librdkafka's internal bucket; a lag of -1 means not known yet
            if int(partition) >= 0 and lag >= 0:
                lags.append(PartitionLag(consumer, topic, int(partition), lag))
    return lags


def consumer_lags(clickhouse: ClickHouse, settings: DagsterSettings) -> list[PartitionLag]:
    if settings.resolved_ingest == "kafka":
        # Kafka-engine tables: ClickHouse's own consumers report through system.kafka_consumers.
        rows = clickhouse.rows(
            """select concat(database, '.', table) as consumer, rdkafka_stat
               from system.kafka_consumers where database = 'analytics'"""
        )
        return [lag for row in rows for lag in lags_from_rdkafka_stat(row["consumer"], row["rdkafka_stat"])]
    # The embedded Kafka bridge writes what it measures into kafka_consumer_lag.
    rows = clickhouse.rows(sql("select consumer_group, topic, partition, lag from $kafka_consumer_lag final"))
    return [PartitionLag(row["consumer_group"], row["topic"], row["partition"], row["lag"]) for row in rows]


# The bridge measures its lag every 5 s: a partition measured longer ago than this has no bridge
# consuming it (stopped, or Kafka no longer used: then empty the table), whatever lag it last showed.
STALE_LAG_MINUTES = 5


def stale_lag_reports(clickhouse: ClickHouse, settings: DagsterSettings) -> list[dict]:
    """The bridge's partitions whose newest measurement is older than STALE_LAG_MINUTES."""
    if settings.resolved_ingest == "kafka":
        return []  # ClickHouse's own consumers report live, in system.kafka_consumers
    return clickhouse.rows(
        sql(
            f"""select consumer_group as consumer, topic, partition, toString(max(measured_at)) as last_measured
                from $kafka_consumer_lag group by consumer_group, topic, partition
                having max(measured_at) < now64(3, 'UTC') - interval {STALE_LAG_MINUTES} minute
                order by last_measured, consumer, topic, partition"""
        )
    )


@dg.asset_check(
    asset=dg.AssetKey(names.KAFKA_CONSUMER_LAG),
    name="consumer_lag_below_max",
    blocking=True,
    description="No consumer group lags more than ANALYTICS_CONSUMER_LAG_MAX messages on any partition, "
    f"and the bridge measured every partition it consumed within {STALE_LAG_MINUTES} minutes.",
)
def consumer_lag_below_max(
    clickhouse: dg.ResourceParam[ClickHouse], settings: dg.ResourceParam[DagsterSettings]
) -> dg.AssetCheckResult:
    lags = consumer_lags(clickhouse, settings)
    behind = sorted((lag for lag in lags if lag.lag > settings.consumer_lag_max), key=lambda lag: -lag.lag)
    stale = stale_lag_reports(clickhouse, settings)
    problems = []
    if behind:
        problems.append(f"{len(behind)} partitions lag more than {settings.consumer_lag_max} messages")
    if stale:
        problems.append(
            f"{len(stale)} partitions were last measured more than {STALE_LAG_MINUTES} minutes ago "
            f"(the oldest at {stale[0]['last_measured']} UTC): is the bridge running?"
        )
    return dg.AssetCheckResult(
        passed=not problems,
        # A stale measurement alone says the lag is unknown, not that it is too high.
        severity=dg.AssetCheckSeverity.ERROR if behind else dg.AssetCheckSeverity.WARN,
        description="; ".join(problems) or None,
        metadata={
            "partitions_measured": len(lags),
            "max_lag": max((lag.lag for lag in lags), default=0),
            "lag_max": settings.consumer_lag_max,
            "behind": dg.MetadataValue.json([asdict(lag) for lag in behind[:20]]),
            "stale": dg.MetadataValue.json(stale[:20]),
        },
    )


HEALTH_CHECKS = [topic_freshness, no_new_dead_letters, consumer_lag_below_max]
