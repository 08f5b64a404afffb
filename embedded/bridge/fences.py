"""When a consumer fenced by the broker should stop rather than rejoin.

A static member (group.instance.id) is fenced when another member joins with its id: another live
bridge process of the same ANALYTICS_KAFKA_INSTANCE_NAME, which fences it again and again; or its
own rejoin after the broker restarted, which a new consumer gets past. Fences that follow the
broker being out of reach are the second kind and are not counted: four broker restarts in a
minute stopped the bridge for good, blaming a second bridge that did not exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError

# A fenced consumer rejoins this many times within the window; fenced once more, the bridge stops.
FENCES_TOLERATED = 2
FENCE_WINDOW_S = 60.0
# What the client reports while the broker is out of reach (restarting, or the network between).
BROKER_OUT_OF_REACH = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})


class Fences:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._fenced_at: list[float] = []
        self._out_of_reach_at: float | None = None

    def client_error(self, error: KafkaError) -> None:
        """The consumer's error callback: remembers when the broker was last out of reach."""
        if error.code() in BROKER_OUT_OF_REACH:
            self._out_of_reach_at = self._clock()

    def one_too_many(self) -> bool:
        """Fenced now: whether to stop (the fences go on with the broker in reach) or rejoin."""
        now = self._clock()
        if self._out_of_reach_at is not None and now - self._out_of_reach_at < FENCE_WINDOW_S:
            return False  # its own rejoin after a broker restart
        self._fenced_at = [at for at in self._fenced_at if now - at < FENCE_WINDOW_S] + [now]
        return len(self._fenced_at) > FENCES_TOLERATED
