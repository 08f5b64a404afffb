"""The Kafka topics the product reads: their names, creating them, and checking they exist."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from core.kafka_errors import kafka_error_code
from core.names import TOPICS

log = logging.getLogger(__name__)


class TopicError(RuntimeError):
    """A topic operation failed; the message says why."""


class KafkaUnreachable(TopicError):
    """No broker answered at the bootstrap address."""


class MissingTopics(TopicError):
    """Topics the caller needs do not exist; ``missing`` names them."""

    def __init__(self, bootstrap: str, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            f"Kafka at {bootstrap} has no topic {', '.join(repr(name) for name in missing)}; "
            f"create them with `analytics topics --kafka {bootstrap}`"
        )


@dataclass(frozen=True)
class TopicState:
    """What ``create_topics`` did with one topic."""

    name: str
    partitions: int
    created: bool

    def describe(self) -> str:
        plural = "" if self.partitions == 1 else "s"
        verb = "created" if self.created else "exists"
        return f"{self.name}: {verb}, {self.partitions} partition{plural}"


def create_topics(
    bootstrap: str, partitions: int = 1, names: tuple[str, ...] = TOPICS, timeout: float = 10.0
) -> list[TopicState]:
    """Create each topic that is missing, with ``partitions`` partitions; existing topics are left as they are.

    Partitions are never added to an existing topic: that would move keys to other partitions and break
    the per-key order of messages already in it. The replication factor is the cluster's default.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    admin = _admin(bootstrap)
    existing = _topic_partitions(admin, bootstrap, timeout)
    wanted = [name for name in names if name not in existing]
    if wanted:
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=-1) for name in wanted],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as error:
                # Another process may have created it between our look and our request: that is fine.
                if kafka_error_code(error) != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicError(
                        f"cannot create topic {name!r} on Kafka at {bootstrap}: {error.args[0].str()}"
                    ) from None
        wait_until_listed(lambda: _topic_partitions(admin, bootstrap, timeout), wanted, timeout, bootstrap)
    return [
        TopicState(name, partitions, created=True)
        if name in wanted
        else TopicState(name, existing[name], created=False)
        for name in names
    ]


def wait_until_listed(listed: Callable[[], dict[str, int]], names: list[str], timeout: float, bootstrap: str) -> None:
    """Kafka answers CreateTopics once its controller has the topics; the broker's metadata may list
    them a moment later. Wait for that (``listed`` reads the metadata), so whoever looks next
    (require_topics, a consumer) sees them."""
    deadline = time.monotonic() + timeout
    while True:
        shown = listed()
        missing = [name for name in names if name not in shown]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TopicError(
                f"Kafka at {bootstrap} created {', '.join(missing)} but did not list them within {timeout:g} s"
            )
        time.sleep(0.05)


def require_topics(bootstrap: str, names: tuple[str, ...] = TOPICS, timeout: float = 10.0) -> None:
    """Raise ``MissingTopics`` naming every topic of ``names`` that the broker does not have."""
    existing = _topic_partitions(_admin(bootstrap), bootstrap, timeout)
    missing = [name for name in names if name not in existing]
    if missing:
        raise MissingTopics(bootstrap, missing)


def _admin(bootstrap: str) -> AdminClient:
    # librdkafka's own log (e.g. every refused connection) goes through Python logging.
    return AdminClient({"bootstrap.servers": bootstrap}, logger=log)


def _topic_partitions(admin: AdminClient, bootstrap: str, timeout: float) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as error:
        raise KafkaUnreachable(
            f"no Kafka answered at {bootstrap} within {timeout:g} s ({error.args[0].str()})"
        ) from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}
