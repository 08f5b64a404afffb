"""The names of topics, tables and measures: the one list the Python code reads.

The dbt project names the same things in its model files and macros; tests/test_names.py holds
the two to each other (every table here is a model there, every topic has its landing models,
and dbt's measure_names() is MEASURES), so a rename in one place that misses the other fails.

The chain of an event, for a topic `t` of entity `e` (workflows / workflow):

    Kafka topic t -> t_messages -> t_queue -> t_checked -> e_events -> aggregates (workflow_totals, ...)
                                                     -> dead_letters (from Kafka, refused by the contract)

t_messages holds the bytes as they came, t_queue typed rows, t_checked the same rows with their
verdict under the event contract, e_events the raw history (every event once).

A view that feeds a table is named `<target>_from_<source>_mv`; a table's Distributed twin on
a cluster is `<table>_all`. Pure Python, no dependencies: the producer SDK imports it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

DATABASE = "analytics"


@dataclass(frozen=True)
class Topic:
    """A Kafka topic and the tables its events pass through."""

    name: str  # the Kafka topic (after the deployment's prefix), e.g. `jobs`
    entity: str  # what one event is about, naming its raw history: `job` -> job_events
    time_column: str  # the event time its raw history keeps (the analytics topic has none: arrival)

    @property
    def messages(self) -> str:
        """Landing: one row per Kafka message, its bytes untouched (Null or Kafka-engine table)."""
        return messages_table(self.name)

    @property
    def queue(self) -> str:
        """Landing: typed rows, parsed from the messages or inserted over HTTP (Null table)."""
        return queue_table(self.name)

    @property
    def checked(self) -> str:
        """Landing: each typed row with its verdict under the event contract (Null table)."""
        return f"{self.name}_checked"

    @property
    def raw(self) -> str:
        """Raw history: every event once."""
        return RAW_EVENTS[self.name]


WORKFLOWS = Topic("workflows", "workflow", "event_time")
JOBS = Topic("jobs", "job", "event_time")
JOB_LOGS = Topic("job_logs", "job_log", "event_time")
ANALYTICS = Topic("analytics", "analytics", "received_at")
TELEMETRY = Topic("telemetry", "telemetry", "event_time")

ALL_TOPICS = (WORKFLOWS, JOBS, JOB_LOGS, ANALYTICS, TELEMETRY)
TOPICS = tuple(topic.name for topic in ALL_TOPICS)
TOPIC_BY_NAME = {topic.name: topic for topic in ALL_TOPICS}

# The largest message the product's brokers take (their `message.max.bytes`; Kafka's default is
# 1 MiB), and so the largest the SDK's KafkaSink produces: a big log line or a broken producer's
# blob should reach the landing tables or dead letters.
MAX_MESSAGE_BYTES = 8 << 20

# How the error of a dead letter begins when the bridge never read its bytes (a record batch the
# consumer could not decode): there is nothing to replay, the bytes are only on the broker.
UNDECODABLE_ERROR = "the bridge could not decode this message"

# Raw history, one table per topic.
WORKFLOW_EVENTS = "workflow_events"
JOB_EVENTS = "job_events"
JOB_LOG_EVENTS = "job_log_events"
ANALYTICS_EVENTS = "analytics_events"
TELEMETRY_EVENTS = "telemetry_events"
RAW_EVENTS = {
    "workflows": WORKFLOW_EVENTS,
    "jobs": JOB_EVENTS,
    "job_logs": JOB_LOG_EVENTS,
    "analytics": ANALYTICS_EVENTS,
    "telemetry": TELEMETRY_EVENTS,
}

# Raw history derived per job, and the ingest's bookkeeping.
JOB_FIRST_SEEN = "job_first_seen"  # one row per job: what `jobs` counts
JOB_COMPLETIONS = "job_completions"  # one row per finished job, with its duration
JOB_CURRENT = "job_current"  # each job's state, merged from its events (view job_states)
SEEN_KEYS = "seen_keys"  # the first-seen gate's memory
DEAD_LETTERS = "dead_letters"
KAFKA_CONSUMER_LAG = "kafka_consumer_lag"
LOG_RETENTION_HISTORY = "log_retention_history"  # every log retention applied, from when
SCHEMA_HISTORY = "schema_history"  # every generation of the schema built, from when

# Aggregates.
WORKFLOW_TOTALS = "workflow_totals"
WORKFLOW_DAILY = "workflow_daily"
JOB_DURATION_DAILY = "job_duration_daily"
JOB_LOG_TOTALS = "job_log_totals"

# The change feed of workflow_totals: the keys each insert touched (the gRPC serving model polls it).
WORKFLOW_CHANGES = "workflow_changes"

# Views.
USER_TOTALS = "user_totals"
JOB_STATES = "job_states"
STORAGE_TABLES = "storage_tables"
STORAGE_TOPICS = "storage_topics"
STORAGE_LOG_RETENTION = "storage_log_retention"

# The tables that hold data, by layer (landing tables hold none: they are Null or Kafka tables).
# Held while a backfill rebuilds days (operations/rebuild_lock.py): a table only while it is held.
REBUILD_LOCK = "rebuild_lock"

RAW_TABLES = (
    *RAW_EVENTS.values(),
    JOB_FIRST_SEEN,
    JOB_COMPLETIONS,
    JOB_CURRENT,
    SEEN_KEYS,
    DEAD_LETTERS,
    KAFKA_CONSUMER_LAG,
    LOG_RETENTION_HISTORY,
    SCHEMA_HISTORY,
)
AGGREGATES = (WORKFLOW_TOTALS, WORKFLOW_DAILY, JOB_DURATION_DAILY, JOB_LOG_TOTALS)
VIEWS = (USER_TOTALS, JOB_STATES, STORAGE_TABLES, STORAGE_TOPICS, STORAGE_LOG_RETENTION)
FEEDS = (WORKFLOW_CHANGES,)  # short-lived change logs: a key appears once per insert, no grain

# On a cluster these are sharded, and read through their Distributed twin `<table>_all`.
SHARDED = (
    WORKFLOW_TOTALS,
    WORKFLOW_DAILY,
    JOB_DURATION_DAILY,
    JOB_LOG_EVENTS,
    JOB_LOG_TOTALS,
    JOB_FIRST_SEEN,
    JOB_COMPLETIONS,
)

# The counters workflow_totals and workflow_daily keep, in their column order (dbt's measure_names()).
MEASURES = (
    "workflow_events",
    "jobs",
    "jobs_completed",
    "jobs_failed",
    "jobs_cancelled",
    "job_execution_seconds",
    "joblogs",
)


def messages_table(topic: str) -> str:
    return f"{topic}_messages"


def queue_table(topic: str) -> str:
    return f"{topic}_queue"


def distributed(table: str) -> str:
    return f"{table}_all"


def view_name(target: str, source: str) -> str:
    """The materialized view that feeds ``target`` from ``source``."""
    return f"{target}_from_{source}_mv"


def qualified(table: str) -> str:
    """`analytics.<table>`, as SQL names it."""
    return f"{DATABASE}.{table}"


# `$key` in SQL names a table: sql("select count() from $job_events") reads analytics.job_events.
TABLE_KEYS = {
    "workflow_events": WORKFLOW_EVENTS,
    "job_events": JOB_EVENTS,
    "job_log_events": JOB_LOG_EVENTS,
    "analytics_events": ANALYTICS_EVENTS,
    "telemetry_events": TELEMETRY_EVENTS,
    "job_first_seen": JOB_FIRST_SEEN,
    "job_completions": JOB_COMPLETIONS,
    "job_current": JOB_CURRENT,
    "seen_keys": SEEN_KEYS,
    "dead_letters": DEAD_LETTERS,
    "kafka_consumer_lag": KAFKA_CONSUMER_LAG,
    "workflow_totals": WORKFLOW_TOTALS,
    "workflow_daily": WORKFLOW_DAILY,
    "job_duration_daily": JOB_DURATION_DAILY,
    "job_log_totals": JOB_LOG_TOTALS,
    "user_totals": USER_TOTALS,
    "job_states": JOB_STATES,
    "storage_tables": STORAGE_TABLES,
    "storage_topics": STORAGE_TOPICS,
    "storage_log_retention": STORAGE_LOG_RETENTION,
}
_QUALIFIED = {key: qualified(table) for key, table in TABLE_KEYS.items()}


def sql(text: str) -> str:
    """SQL with each `$key` replaced by its table's qualified name; an unknown key is a KeyError at once.

    ClickHouse's own `{name:Type}` parameters pass through untouched.
    """
    return Template(text).substitute(_QUALIFIED)
