"""One insert at a time into each topic's landing tables.

The first-seen gates (dbt_project/macros/first_seen.sql) let a key through when no insert before
has written it: two inserts of one topic's events running at once can each let the same new key
through, and both count it until reconciliation. That happens as soon as a job's events, or an
event's redeliveries, are on partitions that different consumers insert (a producer that spreads
messages round-robin, `ANALYTICS_KAFKA_CONSUMERS` above 1, two bridges of one group), or come from
two HTTP senders at once. In `analytics up` every write reaches chDB through this front, so it
runs the inserts into a topic's landing tables (`<topic>_messages`, `<topic>_queue`,
`<topic>_checked`, in any database) one after another, whoever sends them; other topics' inserts,
and every read, go on beside them.

ANALYTICS_FAULT_CONCURRENT_LANDING=1 (tests only) lets them run at once, as a ClickHouse server
does, so a test can race the gates and see reconciliation repair what the race counted twice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.names import ALL_TOPICS
from embedded.sqltext import insert_target

_TOPIC_OF_TABLE = {table: topic.name for topic in ALL_TOPICS for table in (topic.messages, topic.queue, topic.checked)}


def landing_topic(statement: str) -> str | None:
    """The topic whose landing table ``statement`` inserts into, if it does."""
    target = insert_target(statement)
    return None if target is None else _TOPIC_OF_TABLE.get(target[1])


class LandingLocks:
    """An asyncio lock per topic, held around an insert into that topic's landing tables."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._concurrent = os.environ.get("ANALYTICS_FAULT_CONCURRENT_LANDING", "") == "1"

    def _topic(self, statement: bytes) -> str | None:
        """The topic whose lock ``statement`` holds (it inserts into landing tables), if any."""
        return None if self._concurrent else landing_topic(statement.decode("latin-1"))

    def taken_by(self, statement: bytes) -> bool:
        """Whether ``statement`` would hold a topic's lock."""
        return self._topic(statement) is not None

    @asynccontextmanager
    async def held(self, statement: bytes) -> AsyncIterator[None]:
        """Hold the lock of the topic ``statement`` inserts into, if it inserts into landing tables."""
        topic = self._topic(statement)
        if topic is None:
            yield
            return
        async with self._locks.setdefault(topic, asyncio.Lock()):
            yield
