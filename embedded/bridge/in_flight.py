"""A consumer's insert in flight: one batch inserted in a thread of its own while the consumer fills
the next one.

Filling a batch (librdkafka's queue read into Python, the flush interval's wait for a partial one)
took a tenth to a quarter of a second between a topic's inserts, and a topic's inserts are what a
backlog waits for: docs/performance.md, "A batch filled while the one before it is inserted".
There is never more than one batch in flight, so batches are still inserted, and committed, in the
order they were consumed. The consumer commits a batch itself once it has landed: a synchronous
commit from this thread waited for ever while the consumer's thread was in `consume()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from confluent_kafka import Message

log = logging.getLogger("embedded.bridge.consumer")  # its lines belong to the consumer's


class InFlight:
    """At most one batch being inserted; `land()` waits for it and raises what its insert raised."""

    def __init__(self, name: str):
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-insert")
        self._future: Future | None = None
        self._messages: list[Message] = []

    def busy(self) -> bool:
        """Whether a batch is being inserted now."""
        return self._future is not None and not self._future.done()

    def finished(self) -> bool:
        """Whether a batch was handed over and its insert has ended (landed or not yet)."""
        return self._future is not None and self._future.done()

    def start(self, insert: Callable[[list[Message], int], None], messages: list[Message], size: int) -> None:
        """`insert(messages, size)` in the background; the batch before must have landed."""
        if self._future is not None:
            raise RuntimeError(f"{self.name}: a batch is handed over before the one in flight landed")
        self._future, self._messages = self._executor.submit(insert, messages, size), messages

    def land(self) -> list[Message]:
        """Wait for the batch in flight, if any, and return its messages, inserted, for the consumer to
        commit; what failed in its insert is raised here instead, in the consumer's own thread."""
        future, messages = self._future, self._messages
        self._future, self._messages = None, []
        if future is None:
            return []
        future.result()
        return messages

    def land_quietly(self) -> None:
        """Wait for the batch in flight and only log what it raised: for a consumer going away, which
        commits nothing more (what was inserted is delivered again, and the gates drop it)."""
        try:
            self.land()
        except Exception as error:  # noqa: BLE001 - the consumer stops or is replaced: said, not raised
            log.warning("%s: the batch in flight ended with %s: %s", self.name, type(error).__name__, error)

    def close(self) -> None:
        self.land_quietly()
        self._executor.shutdown(wait=True)
