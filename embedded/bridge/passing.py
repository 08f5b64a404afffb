"""Offsets the bridge goes past without inserting them: those the broker no longer holds, and
messages the consumer cannot decode.

A message librdkafka cannot decode (a record batch it fails to decompress: a zstd message of
more than 1 GiB compressed into kilobytes is past `receive.message.max.bytes`, BridgeConfig's
`max_batch_bytes`, once decompressed, so the broker takes it and no consumer can read it; or a
corrupt batch) comes back as the same error at every fetch, for ever: its partition stalled with
no dead letter. Each such offset is dead-lettered without its bytes (they stay on the broker until
its retention), naming the error, and the consumer goes on after it.

A record batch is fetched whole and its error is reported at the batch's first offset, so a batch
of several messages comes back with the same error from the offset after that one: each offset of
it is dead-lettered in turn, until the consumer stands past the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Message, TopicPartition

from core.names import UNDECODABLE_ERROR
from embedded.bridge.metrics import SKIPPED

log = logging.getLogger(__name__)

UNDECODABLE = frozenset({KafkaError._BAD_COMPRESSION, KafkaError._BAD_MSG})


@dataclass(frozen=True)
class Undecodable:
    """A message the consumer could not decode, as a dead letter sees it: its place, no bytes."""

    _partition: int
    _offset: int
    reason: str

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return b""

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_NOT_AVAILABLE, -1


def undecodable(batch: list[Message], passed: dict[int, int]) -> list[Undecodable]:
    """The undecodable messages a poll reported, each once (``passed``: partition -> the offset the
    consumer goes on from, past the undecodable messages before it)."""
    found: dict[tuple[int, int], Undecodable] = {}
    for message in batch:
        error = message.error()
        if error is None or error.code() not in UNDECODABLE or message.offset() < 0:
            continue
        partition, at = message.partition(), message.offset()
        # Reported again at an offset already gone past: fetched from the offset the consumer stands
        # at, the same batch came back, so that offset is in it (librdkafka drops what it fetched
        # before a seek).
        at = max(at, passed.get(partition, -1))
        reason = (
            f"{UNDECODABLE_ERROR} ({error.str()}): a record batch larger than receive.message.max.bytes "
            "once decompressed, or a corrupt one; its bytes stay on the broker until its retention"
        )
        found.setdefault((partition, at), Undecodable(partition, at, reason))
    return list(found.values())


def go_past(consumer: Consumer, kafka_topic: str, message: Undecodable, passed: dict[int, int], name: str) -> None:
    """Commit and seek past an undecodable message, and only once both are done record it in
    ``passed``: a commit refused (a rebalance under way) leaves it to come again and be passed
    then, where recording it first hid it from every later poll and stalled its partition."""
    after = TopicPartition(kafka_topic, message.partition(), message.offset() + 1)
    try:
        consumer.commit(offsets=[after], asynchronous=False)
        consumer.seek(after)
    except KafkaException as error:
        log.warning("%s: could not go on after offset %d (%s); it comes again", name, message.offset(), error)
        return
    passed[message.partition()] = message.offset() + 1


def count_skipped(consumer: Consumer, resets: list[tuple[str, int, int]], topic: str, name: str) -> None:
    """A partition whose next offset the broker no longer held goes on from its earliest one:
    the messages between were removed (retention, DeleteRecords) before they were consumed."""
    for kafka_topic, partition, at in resets:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(kafka_topic, partition), timeout=10, cached=False)
        except KafkaException as error:
            log.warning("%s: %s [%d]: offset %d is not on the broker (%s)", name, kafka_topic, partition, at, error)
            continue
        if at < low:
            SKIPPED.labels(topic).inc(low - at)
            log.warning(
                "%s: %s [%d]: offsets %d to %d were removed from the broker before they were consumed "
                "(retention or DeleteRecords): %d messages never counted; going on from offset %d",
                *(name, kafka_topic, partition, at, low - 1, low - at, low),
            )
        else:
            log.warning(
                "%s: %s [%d]: offset %d is past the log's end (%d): a new topic of that name? going on from %d",
                *(name, kafka_topic, partition, at, high, low),
            )
