"""KafkaSink: produce events to the topics of the contract with an idempotent confluent-kafka producer."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Any

from core.kafka_errors import kafka_error_code
from core.names import MAX_MESSAGE_BYTES
from events.contract import SCHEMA_BY_TOPIC
from events.event import AnyEvent
from events.sinks import MAX_KEPT, Batching, DeliveryError, ErrorCallback, ReportsFailures, check_seconds

log = logging.getLogger(__name__)

# The producer's settings unless a sink's `config` overrides them: idempotent, so librdkafka's own
# retries never duplicate or reorder a partition; batches of 20 ms, compressed with LZ4; messages up
# to what the product's brokers take (librdkafka's default, 1,000,000 bytes, would refuse more).
PRODUCER_SETTINGS: Mapping[str, Any] = MappingProxyType(
    {"enable.idempotence": True, "linger.ms": 20, "compression.type": "lz4", "message.max.bytes": MAX_MESSAGE_BYTES}
)
_MSG_SIZE_TOO_LARGE = 10  # librdkafka's RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, and the broker's error code

# Delivery reports come only when the producer is polled: a thread of the sink polls it this often
# (seconds) while the sink is open, so results arrive without a new emit.
DELIVERY_POLL_INTERVAL = 0.1

# The longest wait librdkafka's flush takes (its milliseconds are a C int): a longer one, a client's
# flush(None) among them, waits this long.
LONGEST_FLUSH = 2_000_000.0


# A Kafka topic name: at most 249 of these characters. With a prefix of others, or too long, every
# event failed at the broker ("Invalid topic"), far from the mistake.
_TOPIC_CHARACTERS = re.compile(r"[A-Za-z0-9._-]*")
_LONGEST_TOPIC = 249


def _check_topic_prefix(prefix: str) -> None:
    longest = _LONGEST_TOPIC - max(len(topic) for topic in SCHEMA_BY_TOPIC)
    if not isinstance(prefix, str) or not _TOPIC_CHARACTERS.fullmatch(prefix) or len(prefix) > longest:
        raise ValueError(
            f"topic_prefix must be letters, digits, '.', '_' and '-', at most {longest} of them, as Kafka's"
            f" topic names are, got {prefix!r}"
        )


class KafkaSink(ReportsFailures):
    """Produces each event to its topic (`workflows`, `jobs`, `job_logs`, `telemetry`, `analytics`,
    after `topic_prefix`), keyed by workflow id so a workflow's events stay in order on one
    partition (else by user id, else unkeyed).

    The producer is idempotent (`enable.idempotence`, hence `acks=all`): its own retries never
    duplicate or reorder a partition. `config` adds or overrides librdkafka settings, among them
    `message.max.bytes` (MAX_MESSAGE_BYTES, 8 MiB: an event bigger, with its key, is reported as
    failed, naming its size and the limit). Delivery reports are counted in `stats`; failed events
    go to `on_error(events, error)` or are kept for `take_undelivered()`. `close()` waits up to
    `flush_timeout` seconds for outstanding deliveries and reports what is still undelivered then
    as failed; `flush(timeout)` (called by `Client.flush`) waits for them without closing.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        config: Mapping[str, Any] | None = None,
        flush_timeout: float = 10.0,
        on_error: ErrorCallback | None = None,
        batching: Batching | None = None,
        max_undelivered: int = MAX_KEPT,
    ):
        from confluent_kafka import Producer  # imported here: only this sink needs librdkafka

        # NaN, or a negative number (which librdkafka reads as no bound), made close() wait for the
        # producer's message timeout (5 minutes by default) instead.
        flush_timeout = min(check_seconds("flush_timeout", flush_timeout), LONGEST_FLUSH)
        _check_topic_prefix(topic_prefix)

        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            **PRODUCER_SETTINGS,
            "client.id": "events-sdk",
            "logger": log,
        }
        settings.update(config or {})
        bootstrap = settings["bootstrap.servers"]
        if not isinstance(bootstrap, str) or not bootstrap.strip():
            # librdkafka takes no brokers at all and only warns: every event failed at close, or after
            # the producer's message timeout, as "Purged in queue" or "Message timed out".
            raise ValueError(f"bootstrap_servers must name brokers, HOST:PORT[,HOST:PORT...], got {bootstrap!r}")
        self._settings = settings
        self._producer = Producer(settings)
        self._max_message_bytes = int(settings["message.max.bytes"])
        self._topic_prefix = topic_prefix
        self._flush_timeout = flush_timeout
        # librdkafka batches by itself; hand it events soon after they are recorded.
        self.batching = batching or Batching(max_events=10_000, max_bytes=16 << 20, interval=0.05)
        self._report_failures_to(on_error, "KafkaSink", max_undelivered)
        self._closed = False
        self._start_polling()

    def _start_polling(self) -> None:
        self._close_lock = threading.Lock()
        # Held while an event goes into the producer: close() takes it once it has set _closed, so
        # no event enters the producer after its last flush and purge, unreported. Reentrant: a
        # delivery report served while producing may call on_error, and that may close the sink.
        self._producing = threading.RLock()
        self._stop_polling = threading.Event()
        self._poller = threading.Thread(target=self._serve_deliveries, name="events-kafka-deliveries", daemon=True)
        self._poller.start()

    def after_fork(self) -> None:
        """In a forked child: a producer of its own (librdkafka's threads do not survive a fork; what
        the parent's producer holds is the parent's to deliver)."""
        from confluent_kafka import Producer

        self._producer = Producer(self._settings)
        self._count_afresh()
        if not self._closed:
            self._start_polling()

    def topic_for(self, event: AnyEvent) -> str:
        return self._topic_prefix + event.topic

    def emit(self, batch: Sequence[AnyEvent]) -> None:
        if self._closed:
            self._give_up([*batch], DeliveryError("the sink is closed", retryable=False))
            return
        for event in batch:
            self._produce(event)
        self._producer.poll(0)  # serve the delivery reports that are ready

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every event given so far to be delivered or reported as
        failed (its delivery report served); True if none is left outstanding."""
        return self._producer.flush(min(timeout, LONGEST_FLUSH)) == 0

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        with self._producing:  # an event going in now is the last: the ones after it see _closed
            pass
        self._stop_polling.set()
        if self._poller is not threading.current_thread():  # else close() is called from on_error
            self._poller.join()
        remaining = self._producer.flush(self._flush_timeout)
        if remaining:
            log.warning(
                "%d events not delivered within %.1fs; reporting them as failed", remaining, self._flush_timeout
            )
            # Purging makes librdkafka report each of them to _delivered with a purge error.
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer.flush(min(1.0, self._flush_timeout))

    def _serve_deliveries(self) -> None:
        while not self._stop_polling.is_set():
            try:
                self._producer.poll(DELIVERY_POLL_INTERVAL)
            except Exception:
                log.exception("KafkaSink: serving delivery reports failed")
                self._stop_polling.wait(DELIVERY_POLL_INTERVAL)

    def _produce(self, event: AnyEvent) -> None:
        with self._producing:
            self._produce_while_open(event)

    def _produce_while_open(self, event: AnyEvent) -> None:
        key = event.key.encode() if event.key else None
        if self._size(event) > self._max_message_bytes:
            self._give_up([event], self._too_large(event))
            return
        deadline = time.monotonic() + self._flush_timeout
        while True:
            if self._closed:  # closed during the batch (a close() that ran out of time)
                self._give_up([event], DeliveryError("the sink is closed", retryable=False))
                return
            try:
                self._producer.produce(
                    self.topic_for(event), value=event.json, key=key, on_delivery=partial(self._delivered, event)
                )
                return
            except BufferError:
                # The producer's local queue is full: let deliveries drain it, for a bounded time.
                if time.monotonic() >= deadline:
                    self._give_up([event], DeliveryError("the producer queue stayed full", retryable=True))
                    return
                self._producer.poll(0.1)
            except Exception as error:  # KafkaException for an invalid topic name or message size
                if kafka_error_code(error) == _MSG_SIZE_TOO_LARGE:  # librdkafka counts the record's overhead too
                    self._give_up([event], self._too_large(event))
                else:
                    self._give_up([event], DeliveryError(f"cannot produce: {error}", retryable=False))
                return

    def _delivered(self, event: AnyEvent, error: Any, message: Any) -> None:
        if error is None:
            self._counters.add(delivered=1)
        else:
            reason = f"{error.str()} (topic {message.topic()})"  # an unknown topic is named
            if error.code() == _MSG_SIZE_TOO_LARGE:  # the broker's limit is below the producer's
                reason += (
                    f" (the event is {self._size(event):,} bytes, the producer's limit {self._max_message_bytes:,})"
                )
            self._give_up([event], DeliveryError(reason, retryable=error.retriable(), code=error.code()))

    @staticmethod
    def _size(event: AnyEvent) -> int:
        return len(event.json) + len(event.key.encode() if event.key else b"")

    def _too_large(self, event: AnyEvent) -> DeliveryError:
        return DeliveryError(
            f"the event is {self._size(event):,} bytes (its JSON and key), over the {self._max_message_bytes:,}"
            " bytes a message may have (the producer's message.max.bytes)",
            retryable=False,
            code=_MSG_SIZE_TOO_LARGE,
        )
