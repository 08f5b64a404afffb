"""The Kafka bridge: the Kafka table engine's job, done next to chDB (which cannot run that engine).

For every topic it consumes with the consumer group the Kafka-engine table would use
(``<prefix>_<topic>``), so switching between embedded and server mode keeps offsets meaningful.
It batches by count and time (the engine's max block size and flush interval), inserts each
message's bytes as one RowBinary row of ``analytics.<topic>_messages`` (embedded/landing_writer.py)
so ClickHouse parses every message on its own, and commits offsets only after the insert
succeeded: at-least-once, like the engine. Redelivered events count once because the schema's
first-seen gate drops keys it has seen.

Every message ends as one landing row or one dead letter: the landing view turns a message it
cannot read, or one that breaks the contract, into a dead letter, and the insert succeeds. Should
ClickHouse still refuse a batch for its data, the batch is split in halves until the refused
messages stand alone, and each is written to ``analytics.dead_letters`` with ClickHouse's error.
Failures about ClickHouse's state are retried with backoff (tenacity), nothing committed meanwhile;
an error code nobody classified is retried a few times, then treated as data, and logged.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass

import tenacity
import urllib3
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from embedded import fault_points
from embedded.landing_writer import ClickHouseUnavailable, InsertFailed, LandingWriter, Verdict
from embedded.topics import TOPICS

log = logging.getLogger(__name__)

MESSAGES = Counter("analytics_bridge_messages", "Messages consumed by the bridge", ["topic"])
INSERTED = Counter("analytics_bridge_inserted", "Messages inserted into the landing tables", ["topic"])
DEAD_LETTERED = Counter(
    "analytics_bridge_refused",
    "Messages ClickHouse refused to take in and the bridge wrote to dead_letters itself",
    ["topic"],
)
RETRIES = Counter(
    "analytics_bridge_insert_retries", "Inserts retried, by why (transient or unclassified)", ["topic", "reason"]
)
INSERT_SECONDS = Histogram("analytics_bridge_insert_seconds", "Time to insert one batch", ["topic"])
LAG = Gauge("analytics_bridge_consumer_lag", "Messages not yet committed", ["topic", "partition"])


class DeadLetterCollector:
    """`analytics_dead_letters{topic}`: the dead letters stored, read from ClickHouse when scraped
    (the landing views write them, so the bridge cannot count them itself)."""

    def __init__(self) -> None:
        self.bridges: list[BridgeConfig] = []
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5))

    def collect(self):
        family = GaugeMetricFamily("analytics_dead_letters", "Dead letters stored, by Kafka topic", labels=["topic"])
        for config in {(c.clickhouse_url, c.database, c.user, c.password) for c in self.bridges}:
            url, database, user, password = config
            try:
                response = self.http.request(
                    "POST",
                    url.rstrip("/") + "/",
                    body=f"SELECT topic, count() FROM {database}.dead_letters FINAL GROUP BY topic FORMAT TSV".encode(),
                    headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": password},
                )
            except urllib3.exceptions.HTTPError:
                continue
            if response.status != 200:
                continue
            for line in response.data.decode(errors="replace").splitlines():
                topic, _, count = line.rpartition("\t")
                family.add_metric([topic], float(count))
        yield family


DEAD_LETTERS = DeadLetterCollector()
REGISTRY.register(DEAD_LETTERS)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """The process's metrics (the bridge's among them) at http://host:port/metrics; a taken port is logged."""
    try:
        start_http_server(port, addr=host)
        log.info("Prometheus metrics on http://%s:%d/metrics", host, port)
    except OSError as error:
        log.warning("cannot serve metrics on %s:%d (%s); ingesting without them", host, port, error.strerror)


# An error code nobody classified is retried this many times before the batch is split as data.
UNCLASSIFIED_ATTEMPTS = 3


@dataclass(frozen=True)
class BridgeConfig:
    clickhouse_url: str
    bootstrap: str
    database: str = "analytics"
    user: str = "default"
    password: str = ""
    topic_prefix: str = ""
    group_prefix: str = "analytics"
    consumers_per_topic: int = 1
    max_block_size: int = 65536
    flush_interval_ms: int = 500
    lag_interval_s: float = 5.0
    session_timeout_ms: int = 10_000
    max_backoff_s: float = 10.0
    topics: tuple[str, ...] = TOPICS


class TopicConsumer:
    """One consumer of one topic's consumer group, inserting what it consumes into one landing table."""

    def __init__(self, config: BridgeConfig, topic: str, stop: threading.Event, number: int = 0):
        self.config = config
        self.topic = topic
        self.kafka_topic = config.topic_prefix + topic
        self.group = f"{config.group_prefix}_{topic}"
        self.stop_event = stop
        self.writer = LandingWriter(
            config.clickhouse_url, config.database, topic, self.kafka_topic, config.user, config.password
        )
        self.name = f"bridge-{topic}-{number}"
        self.pending: list[Message] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": config.bootstrap,
                "group.id": self.group,
                "client.id": self.name,
                # Static membership: a bridge restarted after a crash gets its partitions back at
                # once instead of waiting for the dead consumer's session to expire.
                "group.instance.id": f"{socket.gethostname()}-{self.name}",
                "session.timeout.ms": config.session_timeout_ms,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "isolation.level": "read_committed",
            }
        )
        self._last_lag = 0.0

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        self.consumer.subscribe([self.kafka_topic], on_revoke=self._on_revoke)
        try:
            while not self.stop_event.is_set():
                self._fill_batch()
                if self.pending:
                    self._flush()
                self._report_lag_now_and_then()
            if self.pending:
                self._flush()  # asked to stop: finish the batch and commit it
        except ClickHouseUnavailable:
            log.warning(
                "%s: stopped while ClickHouse was unavailable; %d messages stay uncommitted",
                self.name,
                len(self.pending),
            )
        finally:
            self.consumer.close()

    def _fill_batch(self) -> None:
        deadline = time.monotonic() + self.config.flush_interval_ms / 1000
        while len(self.pending) < self.config.max_block_size and not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            batch = self.consumer.consume(
                num_messages=min(10_000, self.config.max_block_size - len(self.pending)), timeout=min(remaining, 0.2)
            )
            for message in batch:
                error = message.error()
                if error is None:
                    self.pending.append(message)
                    MESSAGES.labels(self.topic).inc()
                elif error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise KafkaException(error)
                elif not error.retriable():
                    log.warning("%s: %s", self.name, error)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Whatever we hold of the partitions we lose is inserted and committed before they go.
        if self.pending:
            self._flush()

    def _flush(self) -> None:
        messages, self.pending = self.pending, []
        fault_points.reach("batch_taken", self.topic, self.stop_event)
        self._insert_all(messages)
        fault_points.reach("batch_inserted", self.topic, self.stop_event)
        self._commit(messages)

    def _insert_all(self, messages: list[Message]) -> None:
        """Insert the batch; isolate messages ClickHouse refuses and dead-letter them."""
        stack = [messages]
        while stack:
            part = stack.pop()
            try:
                self._with_retries(self.writer.insert, part)
                INSERTED.labels(self.topic).inc(len(part))
            except InsertFailed as refused:
                if isinstance(refused, ClickHouseUnavailable):
                    raise  # asked to stop while ClickHouse was away: leave the batch uncommitted
                if refused.verdict is Verdict.UNCLASSIFIED:
                    log.warning(
                        "%s: ClickHouse error code %d is not classified; after %d attempts it is taken as "
                        "the data's fault: %s",
                        self.name,
                        refused.code,
                        UNCLASSIFIED_ATTEMPTS,
                        refused,
                    )
                if len(part) == 1:
                    self._with_retries(self.writer.dead_letter, part[0], f"ClickHouse refused it: {refused}")
                    DEAD_LETTERED.labels(self.topic).inc()
                else:
                    middle = len(part) // 2
                    stack.extend([part[middle:], part[:middle]])  # first half first, keeping order

    def _should_retry(self, state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception()
        if isinstance(error, ClickHouseUnavailable):
            retry = not self.stop_event.is_set()
        elif isinstance(error, InsertFailed) and error.verdict is Verdict.UNCLASSIFIED:
            retry = state.attempt_number < UNCLASSIFIED_ATTEMPTS and not self.stop_event.is_set()
        else:
            return False
        if retry:
            RETRIES.labels(self.topic, error.verdict.value).inc()
            log.warning("%s: %s; retrying (attempt %d)", self.name, error, state.attempt_number)
        return retry

    def _with_retries(self, action, *args) -> None:
        """Retry what may pass (ClickHouse's state; unknown codes a few times); waits end when asked to stop."""
        retrying = tenacity.Retrying(
            retry=self._should_retry,
            wait=tenacity.wait_exponential(multiplier=0.1, max=self.config.max_backoff_s),
            sleep=self.stop_event.wait,
            reraise=True,
        )
        for attempt in retrying:
            with attempt, INSERT_SECONDS.labels(self.topic).time():
                action(*args)

    def _commit(self, messages: list[Message]) -> None:
        last: dict[int, int] = {}
        for message in messages:
            last[message.partition()] = max(last.get(message.partition(), -1), message.offset())
        offsets = [TopicPartition(self.kafka_topic, partition, offset + 1) for partition, offset in last.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # A rebalance took the partitions away: the new owner re-reads them and the gate
            # drops what we already inserted.
            log.warning("%s: commit failed (%s); the messages will be redelivered", self.name, error)

    # -- lag --------------------------------------------------------------------------------
    def _report_lag_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < self.config.lag_interval_s:
            return
        self._last_lag = now
        try:
            self.report_lag()
        except (KafkaException, InsertFailed) as error:
            log.warning("%s: could not measure consumer lag: %s", self.name, error)

    def report_lag(self) -> list[dict]:
        assignment = self.consumer.assignment()
        if not assignment:
            return []
        committed = {tp.partition: tp.offset for tp in self.consumer.committed(assignment, timeout=10)}
        rows = []
        for tp in assignment:
            low, high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            done = committed.get(tp.partition, -1)  # negative: nothing committed yet
            lag = high - (done if done >= 0 else low)
            LAG.labels(self.topic, str(tp.partition)).set(lag)
            rows.append(
                {
                    "consumer_group": self.group,
                    "topic": self.kafka_topic,
                    "partition": tp.partition,
                    "committed_offset": done,
                    "high_watermark": high,
                    "lag": lag,
                }
            )
        params = {
            "query": f"INSERT INTO {self.config.database}.kafka_consumer_lag "
            "(consumer_group, topic, partition, committed_offset, high_watermark, lag) FORMAT JSONEachRow"
        }
        self.writer.post(params, "\n".join(json.dumps(row) for row in rows).encode())
        return rows


class Bridge:
    """Every topic's consumers, each in a thread; `stop()` lets them finish their batch and commit."""

    def __init__(self, config: BridgeConfig):
        self.config = config
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.failures: list[BaseException] = []

    def start(self) -> None:
        DEAD_LETTERS.bridges.append(self.config)
        for topic in self.config.topics:
            for number in range(self.config.consumers_per_topic):
                consumer = TopicConsumer(self.config, topic, self.stop_event, number)
                thread = threading.Thread(target=self._run, args=(consumer,), name=consumer.name, daemon=True)
                thread.start()
                self.threads.append(thread)

    def _run(self, consumer: TopicConsumer) -> None:
        try:
            consumer.run()
        except BaseException as error:  # noqa: BLE001 - reported by wait()/stop()
            log.exception("%s stopped", consumer.name)
            self.failures.append(error)
            self.stop_event.set()

    def stop(self, timeout: float = 60.0) -> None:
        self.stop_event.set()
        if self.config in DEAD_LETTERS.bridges:
            DEAD_LETTERS.bridges.remove(self.config)
        for thread in self.threads:
            thread.join(timeout)

    def wait(self) -> None:
        """Block until stopped (by stop() or a failing consumer)."""
        while not self.stop_event.wait(0.5):
            pass
        self.stop()


def config_from(settings, clickhouse_url: str | None = None) -> BridgeConfig:
    """The bridge's configuration from the project's settings object."""
    return BridgeConfig(
        clickhouse_url=clickhouse_url or settings.resolved_clickhouse_url,
        bootstrap=settings.kafka_bootstrap,
        user=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        topic_prefix=settings.kafka_topic_prefix,
        group_prefix=settings.kafka_consumer_group_prefix,
        consumers_per_topic=settings.kafka_consumers,
        max_block_size=settings.kafka_max_block_size,
        flush_interval_ms=settings.kafka_flush_interval_ms,
    )


def prepare_topics(config: BridgeConfig, create: bool, partitions: int) -> None:
    """Create the topics (or, when told not to, insist that they exist) before consuming."""
    from embedded.topics import create_topics, require_topics

    names = tuple(config.topic_prefix + topic for topic in config.topics)
    if create:
        create_topics(config.bootstrap, partitions, names=names)
    else:
        require_topics(config.bootstrap, names=names)


class BridgeComponent:
    """The bridge as a component of `analytics up` (when ANALYTICS_KAFKA_BOOTSTRAP is set)."""

    name = "Kafka bridge"

    def __init__(self, config: BridgeConfig, partitions: int):
        self.config = config
        self.partitions = partitions
        self.bridge = Bridge(config)

    def start(self) -> None:
        prepare_topics(self.config, create=True, partitions=self.partitions)
        self.bridge.start()

    def stop(self) -> None:
        self.bridge.stop()


def component(settings, engine) -> BridgeComponent | None:
    if not settings.kafka_bootstrap:
        return None
    return BridgeComponent(config_from(settings), settings.kafka_topic_partitions)
