"""Going past an undecodable message (embedded/bridge/passing.py): it counts as passed only once
the consumer has really gone past it.

The first test is a pure unit with a stand-in for the consumer's commit and seek, which a real
broker refuses only by chance (a rebalance under way); the second runs a real consumer.
"""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import KafkaError, KafkaException

from embedded.bridge.consumer import TopicConsumer
from embedded.bridge.passing import Undecodable, go_past
from tests.own_landing import own_landing

BAD = Undecodable(0, 7, "the bridge could not decode this message (Decompression failed)")


class RefusingOnce:
    """A consumer whose first commit is refused, as during a rebalance."""

    def __init__(self):
        self.refusals, self.commits, self.seeks = 1, [], []

    def commit(self, offsets, asynchronous):
        if self.refusals:
            self.refusals -= 1
            raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS, "rebalance in progress"))
        self.commits += [(tp.partition, tp.offset) for tp in offsets]

    def seek(self, tp):
        self.seeks.append((tp.partition, tp.offset))


def test_a_refused_commit_leaves_the_message_to_come_again_and_be_passed_then():
    consumer, passed = RefusingOnce(), {}
    go_past(consumer, "jobs", BAD, passed, "bridge-jobs-0")
    assert passed == {} and consumer.seeks == []  # it comes again, and is not hidden from that poll
    go_past(consumer, "jobs", BAD, passed, "bridge-jobs-0")
    assert passed == {0: 8}
    assert consumer.commits == consumer.seeks == [(0, 8)]


@pytest.mark.kafka
def test_a_topic_created_again_forgets_the_offsets_passed_in_its_old_log(analytics_db, kafka):
    landing = own_landing(analytics_db, kafka, "payload String", "SELECT payload FROM {database}.jobs_messages")
    consumer = TopicConsumer(landing.config(), "jobs", threading.Event())
    try:
        consumer.passed[0] = 1000
        consumer._new_consumer(rewind=True)  # what a topic deleted and created again leads to
        assert consumer.passed == {}  # an undecodable message at offset 5 of the new log is passed too
    finally:
        consumer.consumer.close()
        landing.drop()
