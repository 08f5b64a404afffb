"""Every topic's consumers, each in a thread; and the bridge as a component of `analytics up`."""

from __future__ import annotations

import logging
import threading

from embedded import fault_points
from embedded.bridge.config import BridgeConfig, prepare_topics
from embedded.bridge.consumer import TopicConsumer
from embedded.bridge.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)


class Bridge:
    """Every topic's consumers, each in a thread; `stop()` lets them finish their batch and commit."""

    def __init__(self, config: BridgeConfig):
        self.config = config
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.failures: list[BaseException] = []

    def start(self) -> None:
        c = self.config
        self._watched = DEAD_LETTERS.watch(c.clickhouse_url, c.database, c.user, c.password)
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
        if getattr(self, "_watched", None) is not None:
            DEAD_LETTERS.forget(self._watched)
            self._watched = None
        for thread in self.threads:
            thread.join(timeout)

    def wait(self) -> None:
        """Block until stopped (by stop() or a failing consumer)."""
        while not self.stop_event.wait(0.5):
            pass
        self.stop()


class BridgeComponent:
    """The bridge as a component of `analytics up` (when ANALYTICS_KAFKA_BOOTSTRAP is set)."""

    name = "Kafka bridge"

    def __init__(self, config: BridgeConfig, partitions: int):
        self.config = config
        self.partitions = partitions
        self.bridge = Bridge(config)
        self._stopping = False

    def start(self) -> None:
        fault_points.check()
        prepare_topics(self.config, create=True, partitions=self.partitions)
        self.bridge.start()

    def watch(self, failed) -> None:
        """Call ``failed(error)`` if a consumer stops the bridge by failing (not on stop())."""

        def wait_for_a_failure() -> None:
            self.bridge.stop_event.wait()
            if self.bridge.failures and not self._stopping:
                failed(self.bridge.failures[0])

        threading.Thread(target=wait_for_a_failure, name="bridge-watch", daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        self.bridge.stop()
