"""Partitions of a topic that no member of its consumer group holds, and the rebalance that gives them out.

A static member that joins again within its session timeout (a bridge restarted, or a consumer
made again for a topic created again) is given its old assignment back, without a rebalance; and
librdkafka looks for partitions added to a topic only against the metadata it saw when it joined.
Partitions added before that (while the bridge was down, or a topic created again with more) were
given to nobody: never read, and no lag reported for them. So each consumer asks the broker, now
and then, which partitions the group's members hold; partitions held by nobody for longer than
the group takes to notice an added partition itself are given out by a rebalance: a member of no
use joins the group and leaves it at once.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
# A partition added while the group runs is given out once its leader reads the topic's metadata
# again (every 10 s, consumer.METADATA_REFRESH_MS) and the group rebalances: give that time first.
HELD_BY_NOBODY_S = 20.0
JOIN_TIMEOUT_S = 60.0


class Coverage:
    def __init__(
        self,
        bootstrap: str,
        admin: AdminClient,
        group: str,
        kafka_topic: str,
        name: str,
        stop: threading.Event,
        session_timeout_ms: int,
        clock=None,
    ):
        self.bootstrap = bootstrap
        self.session_timeout_ms = session_timeout_ms
        self.group = group
        self.kafka_topic = kafka_topic
        self.name = name
        self.stop = stop
        self.clock = clock or time.monotonic
        self.admin = admin  # the consumer's own (its topic's identity asks with it too)
        self._checked = float("-inf")
        self._since: float | None = None  # when partitions were first seen held by nobody
        self._rebalancing: threading.Thread | None = None

    def check(self, partitions: int) -> None:
        """`partitions`: how many the topic has now (0 when unknown: nothing to check)."""
        now = self.clock()
        if partitions <= 0 or now - self._checked < CHECK_EVERY_S:
            return
        self._checked = now
        unheld = self.held_by_nobody(partitions)
        if not unheld:
            self._since = None
            return
        if self._since is None:
            self._since = now
        if now - self._since < HELD_BY_NOBODY_S or (self._rebalancing is not None and self._rebalancing.is_alive()):
            return
        log.warning(
            "%s: %s [%s] held by no member of group %s (added while its members were away?): "
            "a rebalance gives them out",
            *(self.name, self.kafka_topic, ", ".join(map(str, sorted(unheld))), self.group),
        )
        self._since = None
        self._rebalancing = threading.Thread(target=self._rebalance, name=f"{self.name}-rebalance", daemon=True)
        self._rebalancing.start()

    def held_by_nobody(self, partitions: int) -> set[int]:
        """The topic's partitions no member of the group holds, the group being stable (else none)."""
        try:
            group = self.admin.describe_consumer_groups([self.group], request_timeout=10)[self.group].result()
        except KafkaException as error:
            log.debug("%s: could not describe group %s: %s", self.name, self.group, error)
            return set()
        if group.state != ConsumerGroupState.STABLE:
            return set()
        held = {
            tp.partition
            for member in group.members
            if member.assignment is not None
            for tp in member.assignment.topic_partitions
            if tp.topic == self.kafka_topic
        }
        return set(range(partitions)) - held

    def _rebalance(self) -> None:
        """A member joins the group and leaves it: two rebalances, the first made from the topic's
        metadata as it is now. It commits nothing and what it may fetch goes nowhere."""
        joined = threading.Event()
        member = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "client.id": f"{self.name}-rebalance",
                "enable.auto.commit": False,
                # Should the process end before it leaves, the group forgets it as soon as the bridge's own.
                "session.timeout.ms": self.session_timeout_ms,
                "heartbeat.interval.ms": max(self.session_timeout_ms // 3, 100),
                "logger": log,
            }
        )
        try:
            member.subscribe([self.kafka_topic], on_assign=lambda consumer, partitions: joined.set())
            deadline = self.clock() + JOIN_TIMEOUT_S
            while not joined.is_set() and not self.stop.is_set() and self.clock() < deadline:
                member.poll(0.2)
        except KafkaException as error:
            log.warning("%s: the rebalance of group %s failed: %s", self.name, self.group, error)
        finally:
            member.close()  # a member without an instance id leaves the group at once
