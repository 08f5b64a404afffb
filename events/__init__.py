"""The producer SDK: record workflow, job, job-log and telemetry events and send them to Kafka or ClickHouse.

from events import Client, KafkaSink

with Client(KafkaSink("localhost:9092")).with_service("scheduler", "1.4.0") as client:
    client.record_workflow("created", user_id="u-1", workflow_id="w-1", kind="HEARTBEAT")
    client.record_job("started", user_id="u-1", workflow_id="w-1", job_id="j-1", started_at=now)
"""

from events.clickhouse import ClickHouseSink
from events.client import Client, ClientStats
from events.contract import InvalidEvent, topic_for
from events.event import AnalyticsCompatEvent, AnyEvent, Event
from events.kafka import KafkaSink
from events.sinks import (
    Batching,
    DeliveryError,
    DeliveryStats,
    FilterSink,
    LoggerSink,
    MemorySink,
    NoopSink,
    Sink,
)

__all__ = [
    "AnalyticsCompatEvent",
    "AnyEvent",
    "Batching",
    "ClickHouseSink",
    "Client",
    "ClientStats",
    "DeliveryError",
    "DeliveryStats",
    "Event",
    "FilterSink",
    "InvalidEvent",
    "KafkaSink",
    "LoggerSink",
    "MemorySink",
    "NoopSink",
    "Sink",
    "topic_for",
]
