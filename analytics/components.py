"""What `analytics up` runs next to the embedded ClickHouse: each part, built from its settings slice.

A factory gets the settings and the open engine and returns a component (name, start, stop), or
None to leave it out. `stack_components` is the list `up` starts, in order; they stop in reverse.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from analytics.stack import ComponentFactory
from core.settings.composed import Settings
from core.settings.demo import DemoSettings
from core.settings.grpc import GrpcSettings
from core.settings.kafka import IngestSettings, LocalKafkaSettings
from embedded.engine import Engine

log = logging.getLogger(__name__)


def stack_components(demo: bool = False, local_kafka: bool = False) -> list[ComponentFactory]:
    """What `analytics up` runs next to the embedded ClickHouse, in start order."""
    components = [local_kafka_component] if local_kafka else []
    components += [bridge_component, grpc_component]
    if demo:
        components.append(demo_component)
    return components + [dagster_component]


def local_kafka_component(settings: Settings, engine: Engine):
    """`up --with-kafka`: a local Apache Kafka broker."""
    from embedded.kafka.broker import KafkaBroker
    from embedded.kafka.supervise import BrokerComponent

    return BrokerComponent(KafkaBroker.from_settings(settings.slice(LocalKafkaSettings)))


def bridge_component(settings: Settings, engine: Engine):
    """The Kafka bridge, when there is a Kafka to consume (ANALYTICS_KAFKA_BOOTSTRAP)."""
    from embedded.bridge.config import config_from
    from embedded.bridge.runner import BridgeComponent

    if not settings.kafka_bootstrap:
        return None
    return BridgeComponent(config_from(settings.slice(IngestSettings)), settings.kafka_topic_partitions)


def grpc_component(settings: Settings, engine: Engine):
    """The gRPC AnalyticsService, reading the stack's own chDB in process."""
    from embedded.backend import ChdbBackend
    from server.service import AnalyticsServer

    return AnalyticsServer(settings.slice(GrpcSettings), ChdbBackend(engine))


def dagster_component(settings: Settings, engine: Engine | None):
    """Dagster's webserver and daemon, unless switched off (--no-dagster)."""
    from analytics.dagster_service import DagsterService

    return DagsterService(settings) if settings.dagster_enabled else None


class ThreadComponent:
    """A component whose work is a blocking `run(stop_event)` in a thread of its own."""

    def __init__(self, name: str, run: Callable[[threading.Event], None]):
        self.name = name
        self._run = run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded, name=name, daemon=True)

    def _guarded(self) -> None:
        try:
            self._run(self._stop)
        except Exception:  # noqa: BLE001 - a component's failure is logged, the stack keeps serving
            log.exception("%s failed", self.name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def demo_component(settings: Settings, engine: Engine) -> ThreadComponent:
    """`up --demo`: the events SDK's demo generator, through Kafka when there is one, else HTTP."""
    from analytics.demo_traffic import run_logged_demo

    demo = settings.slice(DemoSettings)
    return ThreadComponent("demo traffic", lambda stop: run_logged_demo(demo, stop))
