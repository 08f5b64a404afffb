"""One consumer of one topic's consumer group: batches, inserts with retries, commits after success."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import tenacity
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from core.repeated_log import RepeatedFailure
from embedded import fault_points
from embedded.bridge.commits import commit_after, commit_past_what_is_no_message
from embedded.bridge.config import BridgeConfig
from embedded.bridge.coverage import Coverage
from embedded.bridge.fences import FENCE_WINDOW_S, FENCES_TOLERATED, Fences
from embedded.bridge.in_flight import InFlight
from embedded.bridge.lag import LagReporter
from embedded.bridge.librdkafka_log import LibrdkafkaLog
from embedded.bridge.metrics import DEAD_LETTERED, INSERT_SECONDS, INSERTED, MESSAGES, RETRIES
from embedded.bridge.passing import UNDECODABLE, Undecodable, count_skipped, go_past, undecodable
from embedded.bridge.topic_identity import TopicIdentity
from embedded.bridge.writer import ClickHouseUnavailable, InsertFailed, LandingWriter, Verdict

log = logging.getLogger(__name__)

# Behind a backlog a batch may wait this many flush intervals to fill up to the block size.
BACKLOG_STRETCH = 4

# An error code nobody classified is retried this many times before the batch is split as data.
UNCLASSIFIED_ATTEMPTS = 3

# A fetch waits for this many bytes (about 4,000 events), or for fetch_wait_ms, whichever is first.
FETCH_MIN_BYTES = 1_000_000
METADATA_REFRESH_MS = 10_000

# How often a filled batch looks whether the insert before it has ended (then it goes in at once).
IN_FLIGHT_POLL_S = 0.02


def fetch_wait_ms(flush_interval_ms: int) -> int:
    """How long the broker may hold a fetch: a fifth of the flush interval, 10 to 100 ms."""
    return min(100, max(10, flush_interval_ms // 5))


class Fenced(Exception):
    """The broker fenced this static member: another consumer joined with its instance id."""

    def __init__(self, error: KafkaError):
        super().__init__(error.str())
        self.error = error


class TopicGone(Exception):
    """The topic was deleted while the bridge read it (and maybe created again since)."""


def is_fenced(error: KafkaError) -> bool:
    return error.code() in (KafkaError._FENCED, KafkaError.FENCED_INSTANCE_ID) or "fenced" in error.str().lower()


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
        self.pending_bytes = 0  # of the messages' values: a block of large messages ends early
        self.uncommitted = 0  # messages of a flush that stopped while ClickHouse was unavailable
        self.passed: dict[int, int] = {}  # partition -> the offset it goes on from past an undecodable message
        self.undecodable_log = RepeatedFailure(log, f"{self.name}: a message the consumer cannot decode")
        self.instance_id = f"{config.instance_name or socket.gethostname()}-{self.name}"
        self.librdkafka_log = LibrdkafkaLog(f"{__name__}.{self.name}")
        self.identity = TopicIdentity(config.bootstrap, self.kafka_topic)
        self.coverage = Coverage(
            config.bootstrap,
            self.identity.admin,
            self.group,
            self.kafka_topic,
            self.name,
            stop,
            config.session_timeout_ms,
        )
        self.fences = Fences()
        self.in_flight = InFlight(self.name)  # the batch before the one filling, being inserted
        self.lag_exported: set[int] = set()  # partitions whose lag is exported: kept by each consumer made again
        self._new_consumer()

    def _new_consumer(self, rewind: bool = False) -> None:
        """A consumer of the topic; with `rewind`, one that reads each partition from its first message
        when first given it, whatever offsets were committed (on a topic created again, what was
        committed may be the old log's positions)."""
        self.identity.remember()
        self._rewound: set[int] | None = set() if rewind else None
        if rewind:
            self.passed = {}  # offsets of the topic's old log
        self.consumer = Consumer(
            {
                "bootstrap.servers": self.config.bootstrap,
                "group.id": self.group,
                "client.id": self.name,
                # Static membership: a bridge restarted after a crash gets its partitions back at
                # once instead of waiting for the dead consumer's session to expire. Each process
                # of a group needs its own name (ANALYTICS_KAFKA_INSTANCE_NAME), or the broker
                # fences the older one.
                "group.instance.id": self.instance_id,
                "session.timeout.ms": self.config.session_timeout_ms,
                # Kafka's rule of thumb: at most a third of the session, so one late heartbeat is no expiry.
                "heartbeat.interval.ms": max(self.config.session_timeout_ms // 3, 100),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "isolation.level": "read_committed",
                # Fetch in batches: the broker answers once it holds FETCH_MIN_BYTES for this
                # consumer or the wait is up, not with whatever single batch a producer just wrote.
                # A block is inserted at most every flush interval, so waiting a fifth of it costs
                # little freshness; at 35,000 events/s the broker used 7 CPU-seconds in 16 s
                # without it, 5 with it (docs/performance.md, "One refusal a block, one parse a
                # timestamp, fetches in batches").
                "fetch.min.bytes": FETCH_MIN_BYTES,
                # Partitions added to a topic are found when its metadata is next read: librdkafka's
                # default of 5 minutes left a new partition's messages unread that long (more than
                # 200 s measured), while producers wrote to it at once.
                "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
                "fetch.wait.max.ms": fetch_wait_ms(self.config.flush_interval_ms),
                "receive.message.max.bytes": self.config.max_batch_bytes,
                "logger": self.librdkafka_log,
                "error_cb": self.fences.client_error,  # and librdkafka logs it
            }
        )
        self.lag = LagReporter(
            self.consumer,
            self.writer,
            self.config,
            self.topic,
            self.kafka_topic,
            self.group,
            self.name,
            self.lag_exported,
            self.identity.admin,
        )

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while True:
                try:
                    self._consume()
                    return
                except Fenced as fenced:
                    # A broker restart can fence a static member by its own rejoin; a consumer is
                    # unusable after that, so a new one joins. Fenced again and again with the
                    # broker in reach, another live process has this one's name: stop and say so.
                    if self.fences.one_too_many():
                        raise KafkaException(self._explained(fenced.error)) from None
                    log.warning("%s: fenced (%s); rejoining with a new consumer", self.name, fenced.error.str())
                    self.in_flight.land_quietly()  # inserted; its commit may have failed: then redelivered
                    self.pending, self.pending_bytes = [], 0  # uncommitted: redelivered to whoever holds them
                    with contextlib.suppress(KafkaException, RuntimeError):
                        self.consumer.close()
                    self._new_consumer()
                except TopicGone as gone:
                    self._wait_for_the_topic(gone)
        except ClickHouseUnavailable:
            log.warning(
                "%s: stopped while ClickHouse was unavailable; %d messages stay uncommitted",
                self.name,
                len(self.pending) + self.uncommitted,
            )
        finally:
            if self.in_flight.busy():
                self.stop_event.set()  # a failing consumer stops the bridge; its insert in flight ends first
            self.in_flight.close()
            with contextlib.suppress(KafkaException, RuntimeError):
                self.consumer.close()

    def _wait_for_the_topic(self, gone: TopicGone) -> None:
        """The topic was deleted: what was consumed is inserted (its commit fails, or lands in a new
        log, which is read from its start anyway), the other topics' consumers go on, and once a topic
        of this name exists a new consumer reads it from its first message, whatever was committed."""
        self._flush_now()
        self.lag.forget_partitions_from(0)
        if self._partition_count():
            log.warning("%s: %s: a new consumer reads it from its first message", self.name, gone)
        else:
            log.warning(
                "%s: %s; waiting for it (`analytics topics` creates it); the other topics go on", self.name, gone
            )
            while not self._partition_count():
                if self.stop_event.wait(self.config.lag_interval_s):
                    return
            log.warning(
                "%s: topic %s exists again: a new consumer reads it from its first message",
                *(self.name, self.kafka_topic),
            )
        with contextlib.suppress(KafkaException, RuntimeError):
            self.consumer.close()
        self._new_consumer(rewind=True)

    def _partition_count(self) -> int:
        """How many partitions the topic has: 0 when it does not exist (or the broker cannot say now)."""
        try:
            found = self.consumer.list_topics(self.kafka_topic, timeout=10).topics.get(self.kafka_topic)
        except KafkaException as error:  # the broker cannot say now: asked again after the lag interval
            log.debug("%s: could not read topic %s: %s", self.name, self.kafka_topic, error)
            return 0
        return len(found.partitions) if found is not None and found.error is None else 0

    def _consume(self) -> None:
        # A topic created again with fewer partitions (while the bridge ran, or before it started)
        # leaves lag rows that nothing measures any more.
        if partitions := self._partition_count():
            self.lag.forget_partitions_from(partitions)
        self.consumer.subscribe([self.kafka_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        while not self.stop_event.is_set():
            self._fill_batch()
            if self.pending:
                self._hand_over()
            self._report_lag_now_and_then()
        self._flush_now()  # asked to stop: the batch in flight lands, the one filling goes in, both committed

    def _fill_batch(self) -> None:
        """Fill the batch up to the block size or the flush interval. The size is in messages, and
        in bytes too, so the bridge's memory and the insert's stay bounded whatever the messages
        weigh (the last poll may bring up to librdkafka's queue, 64 MiB, more: _blocks cuts it).
        Behind a backlog (the last poll came back full) the interval may stretch to BACKLOG_STRETCH
        times: each insert costs the view chain once, so full blocks are what keeps up; caught up,
        the interval holds. While the batch before is still being inserted, the batch goes on
        filling past the interval, and goes in as soon as that insert has ended."""
        interval = self.config.flush_interval_ms / 1000
        started = time.monotonic()
        behind = False
        while (
            len(self.pending) < self.config.max_block_size
            and self.pending_bytes < self.config.max_block_bytes
            and not self.stop_event.is_set()
        ):
            if self.in_flight.finished():
                self._land()  # committed as soon as it is in
            waited = time.monotonic() - started
            remaining = (interval * BACKLOG_STRETCH if behind else interval) - waited
            if remaining <= 0 and not self.in_flight.busy():
                return
            wanted = min(10_000, self.config.max_block_size - len(self.pending))
            timeout = IN_FLIGHT_POLL_S if self.in_flight.busy() else min(remaining, 0.2)
            batch = self.consumer.consume(num_messages=wanted, timeout=timeout)
            behind = len(batch) == wanted
            # Per message only what must be (a counter's increment costs as much as framing the message).
            messages = [message for message in batch if message.error() is None]
            self.pending += messages
            self.pending_bytes += sum(map(len, messages))  # len(message): its value's bytes
            MESSAGES.labels(self.topic).inc(len(messages))
            if len(messages) < len(batch):
                self._raise_or_log([error for message in batch if (error := message.error()) is not None])
                if stuck := undecodable(batch, self.passed):
                    self._pass_undecodable(stuck)
            if self.librdkafka_log.resets:
                resets, self.librdkafka_log.resets = self.librdkafka_log.resets, []
                count_skipped(self.consumer, resets, self.topic, self.name)

    def _pass_undecodable(self, stuck: list[Undecodable]) -> None:
        """Dead-letter each message the consumer cannot decode and go on after it (embedded/bridge/passing.py)."""
        self._flush_now()  # what came before is inserted and committed first: the commit below passes it
        for message in stuck:
            # A batch of many undecodable messages goes one offset a poll: logged once a minute.
            self.undecodable_log.failed(f"[{message.partition()}] offset {message.offset()}: {message.reason}")
            self._with_retries(self.writer.dead_letter, message, message.reason)
            DEAD_LETTERED.labels(self.topic).inc()
            go_past(self.consumer, self.kafka_topic, message, self.passed, self.name)

    def _raise_or_log(self, errors: list[KafkaError]) -> None:
        """What a poll returned besides messages: a deleted topic is waited for, fatal errors stop the
        consumer, the rest are logged."""
        for error in errors:
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise TopicGone(f"topic {self.kafka_topic} does not exist ({error.str()})")
            if is_fenced(error):
                raise Fenced(error)
            if error.fatal() or error.code() == KafkaError._FATAL:
                raise KafkaException(error)
            if not error.retriable() and error.code() not in UNDECODABLE:  # those are dead-lettered
                log.warning("%s: %s", self.name, error)

    def _explained(self, error: KafkaError) -> str:
        return (
            f"{self.name}: another consumer joined group {self.group} with this one's instance id "
            f"{self.instance_id!r} and the broker fenced this one {FENCES_TOLERATED + 1} times within "
            f"{FENCE_WINDOW_S:.0f} s: give each bridge process its own ANALYTICS_KAFKA_INSTANCE_NAME ({error.str()})"
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.lag.keep_exporting({tp.partition for tp in partitions})
        if self._rewound is None:
            return  # at the committed offsets
        for tp in partitions:
            if tp.partition not in self._rewound:
                tp.offset = OFFSET_BEGINNING
                self._rewound.add(tp.partition)
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Whatever we hold of the partitions we lose is inserted and committed before they go.
        self._flush_now()

    def _hand_over(self) -> None:
        """Insert the batch in the background while the next one fills; the batch before it lands and
        is committed first, so batches go in and are committed in the order they were consumed."""
        self._land()
        self.in_flight.start(self._insert, *self._take_pending())

    def _land(self) -> None:
        """Wait for the batch in flight, if any, and commit it (what its insert raised is raised here)."""
        if inserted := self.in_flight.land():
            self._commit(inserted)

    def _flush_now(self) -> None:
        """Land the batch in flight, then insert and commit what is pending, in this thread."""
        self._land()
        if self.pending:
            messages, size = self._take_pending()
            self._insert(messages, size)
            self._commit(messages)

    def _take_pending(self) -> tuple[list[Message], int]:
        messages, size = self.pending, self.pending_bytes
        self.pending, self.pending_bytes = [], 0
        return messages, size

    def _insert(self, messages: list[Message], size: int) -> None:
        """Insert a batch, in blocks within the size in bytes; the caller commits it once it is in."""
        for block in self._blocks(messages, size):
            fault_points.reach("batch_taken", self.topic, self.stop_event)
            try:
                self._insert_all(block)
            except ClickHouseUnavailable:
                self.uncommitted = len(messages)  # none of them committed, for the stop's last word
                raise
            fault_points.reach("batch_inserted", self.topic, self.stop_event)

    def _blocks(self, messages: list[Message], size: int) -> Iterator[list[Message]]:
        """A poll may bring more bytes than a block takes (it returns up to 10,000 messages of
        whatever size): cut there. A message larger than the bound is a block of its own."""
        if size <= self.config.max_block_bytes:
            yield messages  # every block of small messages: no loop in Python
            return
        block: list[Message] = []
        size = 0
        for message in messages:
            if block and size + len(message) > self.config.max_block_bytes:
                yield block
                block, size = [], 0
            block.append(message)
            size += len(message)
        yield block

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
        commit_after(self.consumer, self.kafka_topic, messages, self.name)

    def _report_lag_now_and_then(self) -> None:
        if not self.lag.due():
            return
        # Before anything is committed: a position of the old log must not be committed in a new one.
        if happened := self.identity.changed():
            said = "does not exist (it was deleted)" if happened == "deleted" else "was deleted and created again"
            raise TopicGone(f"topic {self.kafka_topic} {said}")
        self.coverage.check(self.identity.partitions)  # partitions the group gave to nobody
        # Only with every consumed message inserted and committed: the position is past them all.
        everything_in = not self.pending and not self.in_flight.busy()
        committed = commit_past_what_is_no_message(self.consumer, self.name) if everything_in else None
        self.lag.report_now_and_then(committed)

    def report_lag(self) -> list[dict]:
        return self.lag.report()
