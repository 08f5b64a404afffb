"""Which topic of its name a consumer reads. Kafka gives every topic an id: a topic deleted and
created again under the same name, however fast, is another topic with another id.

A consumer that missed the deletion (deleted and created again between two metadata refreshes)
goes on at its old positions in the new log and commits them there: the new topic's first messages,
up to the old offsets, would never be read. So each consumer asks the topic's id every lag interval
and, when it changed, starts over from the new log's first message.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from core.kafka_errors import kafka_error_code

log = logging.getLogger(__name__)

GONE = "gone"  # what `current` answers for a topic that does not exist


class TopicIdentity:
    def __init__(self, bootstrap: str, kafka_topic: str):
        self.kafka_topic = kafka_topic
        self.admin = AdminClient({"bootstrap.servers": bootstrap}, logger=log)
        self.known: str | None = None
        self.partitions = 0  # how many the topic had when last asked (0: unknown, or no topic)

    def current(self) -> str | None:
        """The topic's id now, GONE when there is no topic of that name, None when the broker cannot say."""
        future = self.admin.describe_topics(TopicCollection([self.kafka_topic]), request_timeout=10)[self.kafka_topic]
        try:
            described = future.result()
        except KafkaException as error:
            self.partitions = 0
            if kafka_error_code(error) == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return GONE
            log.debug("could not read the id of topic %s: %s", self.kafka_topic, error)
            return None
        self.partitions = len(described.partitions)
        return str(described.topic_id)

    def remember(self) -> None:
        """Take the topic's id now as the one being read."""
        self.known = self.current()

    def changed(self) -> str | None:
        """What happened to the topic since `remember`: 'deleted', 'created again', or None."""
        now = self.current()
        if now is None or now == self.known:
            return None
        if self.known in (None, GONE):  # it was not known when remembered: this one is the one read
            self.known = now
            return None
        return "deleted" if now == GONE else "created again"
