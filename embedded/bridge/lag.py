"""Consumer lag: how far each partition's committed offset is behind its high watermark.

The high watermark is read uncommitted, as Kafka's own tools read it: the bridge's read_committed
consumer sees the last stable offset, which stops at the first transaction still open, so a
producer that died inside a transaction held its partition (until the broker aborts it, after
transaction.timeout.ms) with a lag of 0 while the messages behind it waited.

Measured every few seconds by each consumer, exported as `analytics_bridge_consumer_lag` and
written into `kafka_consumer_lag` (what Dagster's lag check and ad-hoc SQL read).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from datetime import UTC, datetime

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from core.kafka_errors import kafka_error_code
from core.names import KAFKA_CONSUMER_LAG
from embedded.bridge.config import BridgeConfig
from embedded.bridge.metrics import LAG
from embedded.bridge.writer import InsertFailed, LandingWriter

log = logging.getLogger(__name__)


class LagReporter:
    def __init__(
        self,
        consumer: Consumer,
        writer: LandingWriter,
        config: BridgeConfig,
        topic: str,
        kafka_topic: str,
        group: str,
        name: str,
        exported: set[int],
        admin: AdminClient | None = None,
    ):
        self.consumer = consumer
        self.admin = admin  # reads high watermarks uncommitted (without it, the consumer's stand)
        self.writer = writer
        self.config = config
        self.topic = topic
        self.kafka_topic = kafka_topic
        self.group = group
        self.name = name
        self._last = 0.0
        # The partitions whose lag this process exports (a consumer made again keeps its predecessor's).
        self.exported = exported

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.config.lag_interval_s

    def report_now_and_then(self, committed: dict[int, int] | None = None) -> None:
        if not self.due():
            return
        self._last = time.monotonic()
        try:
            self.report(committed)
        except (KafkaException, InsertFailed) as error:
            log.warning("%s: could not measure consumer lag: %s", self.name, error)

    def report(self, committed: dict[int, int] | None = None) -> list[dict]:
        """Measure and write each assigned partition's lag; `committed` (partition: offset), when
        the caller has just read it from the broker, saves asking again."""
        assignment = self.consumer.assignment()
        if not assignment:
            return []
        if committed is None:
            committed = {tp.partition: tp.offset for tp in self.consumer.committed(assignment, timeout=10)}
        rows = []
        measured_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        ends = self._high_watermarks(assignment)
        for tp in assignment:
            try:
                low, high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            except KafkaException as error:
                # A partition the topic no longer has (created again with fewer), assigned until the
                # group next rebalances: the others are measured.
                if kafka_error_code(error) == KafkaError._UNKNOWN_PARTITION:
                    continue
                raise
            high = max(high, ends.get(tp.partition, high))
            done = committed.get(tp.partition, -1)  # negative: nothing committed yet
            lag = high - (done if done >= 0 else low)
            LAG.labels(self.topic, str(tp.partition)).set(lag)
            self.exported.add(tp.partition)
            rows.append(
                {
                    "consumer_group": self.group,
                    "topic": self.kafka_topic,
                    "partition": tp.partition,
                    "committed_offset": done,
                    "high_watermark": high,
                    "lag": lag,
                    "measured_at": measured_at,  # the table has no default: without it, 1970
                }
            )
        params = {
            "query": f"INSERT INTO {self.config.database}.{KAFKA_CONSUMER_LAG} "
            "(consumer_group, topic, partition, committed_offset, high_watermark, lag, measured_at) FORMAT JSONEachRow"
        }
        self.writer.post(params, "\n".join(json.dumps(row) for row in rows).encode())
        return rows

    def _high_watermarks(self, assignment: list[TopicPartition]) -> dict[int, int]:
        """Each partition's high watermark read uncommitted (open transactions included), by partition;
        a partition the broker did not answer for is left out (the consumer's figure stands)."""
        if self.admin is None:
            return {}
        futures = self.admin.list_offsets(
            {TopicPartition(tp.topic, tp.partition): OffsetSpec.latest() for tp in assignment},
            isolation_level=IsolationLevel.READ_UNCOMMITTED,
            request_timeout=10,
        )
        ends = {}
        for tp, future in futures.items():
            with contextlib.suppress(KafkaException):
                ends[tp.partition] = future.result().offset
        return ends

    def keep_exporting(self, assigned: set[int]) -> None:
        """Stop exporting the lag of partitions this consumer no longer holds (another member of the
        group took them, or the topic lost them): their last value would stand for ever beside the
        new owner's, a lag nobody has."""
        for partition in self.exported - assigned:
            with contextlib.suppress(KeyError):  # another consumer of this process removed it
                LAG.remove(self.topic, str(partition))
            self.exported.discard(partition)

    def forget_partitions_from(self, count: int) -> None:
        """Drop this group's rows of the topic's partitions numbered `count` and up: partitions the
        topic no longer has (deleted, or created again with fewer). Nothing measures them any more,
        so they would read as a stalled bridge for ever (the health check's stale rows)."""
        self.keep_exporting({partition for partition in self.exported if partition < count})
        try:
            self.writer.post(
                {
                    "query": f"DELETE FROM {self.config.database}.{KAFKA_CONSUMER_LAG} WHERE consumer_group = "
                    "{group:String} AND topic = {topic:String} AND partition >= {count:UInt32}",
                    "param_group": self.group,
                    "param_topic": self.kafka_topic,
                    "param_count": str(count),
                    # Not waited for: a delete is a mutation, and with merges stopped
                    # (`SYSTEM STOP MERGES`) waiting would hold the consumer until they start.
                    "lightweight_deletes_sync": "0",
                },
                b"",
            )
        except InsertFailed as error:
            log.warning(
                "%s: could not drop the lag of partitions %s no longer has: %s", self.name, self.kafka_topic, error
            )
