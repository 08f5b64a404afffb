"""A consumer's commits: after each inserted batch, and past what is no message."""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

log = logging.getLogger("embedded.bridge.consumer")  # where these lines have always been logged


def _epoch(message: Message) -> int:
    """The leader epoch a message was written in; -1 (none) from a broker too old to say."""
    epoch = message.leader_epoch()
    return -1 if epoch is None else epoch


def commit_after(consumer: Consumer, kafka_topic: str, messages: list[Message], name: str) -> None:
    """Commit past the last of ``messages`` in each partition (they are inserted)."""
    last: dict[int, Message] = {}
    for message in messages:
        if message.partition() not in last or message.offset() > last[message.partition()].offset():
            last[message.partition()] = message
    # Each offset with the leader epoch of the message before it (KIP-320): a consumer that starts
    # from it checks it against the leader's log, and after an unclean leader election goes on
    # from where that log was cut. A bare offset is taken at its word: the messages written
    # again below it, after the cut, would never be read.
    offsets = [
        TopicPartition(kafka_topic, partition, message.offset() + 1, leader_epoch=_epoch(message))
        for partition, message in last.items()
    ]
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as error:
        # A rebalance took the partitions away: the new owner re-reads them and the gate
        # drops what we already inserted.
        log.warning("%s: commit failed (%s); the messages will be redelivered", name, error)


def commit_past_what_is_no_message(consumer: Consumer, name: str) -> dict[int, int] | None:
    """Commit the consumer's position where it is past the last commit, everything consumed
    being inserted: what follows the last message there is no message (a transaction's commit
    marker, or records of an aborted one that read_committed skips). Committing only after
    messages, a topic written in transactions lagged one marker a partition behind for ever.
    Returns the committed offsets as they now stand (partition: offset), for the lag report."""
    assignment = consumer.assignment()
    if not assignment:
        return None
    try:
        committed = {tp.partition: tp.offset for tp in consumer.committed(assignment, timeout=10)}
        ahead = [
            tp for tp in consumer.position(assignment) if tp.offset >= 0 and tp.offset > committed.get(tp.partition, -1)
        ]
        if ahead:
            consumer.commit(offsets=ahead, asynchronous=False)
            committed.update((tp.partition, tp.offset) for tp in ahead)
        return committed
    except KafkaException as error:
        log.warning("%s: could not commit past the last message: %s", name, error)
        return None
