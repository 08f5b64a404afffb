"""Lookups that arrive together answered by one query: ClickHouse's fixed cost paid once per batch.

A caller that finds no batch running runs one at once with whatever keys are waiting, its own
included, so an idle server adds no delay. Callers that arrive meanwhile wait; when a batch
ends, one of them runs the next with every key waiting by then (up to ``max_batch``). At most
``parallel`` batches run at a time, so the backend's connections stay busy without flooding it.
A caller waits no longer than its own timeout; a batch is given the longest one among its keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from core.backend import QueryTimedOut

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# fetch(keys, seconds) -> {key: value} for the keys found; a key that is absent has no value.
Fetch = Callable[[list, float], dict]


class _Waiter:
    __slots__ = ("key", "deadline", "done", "lead", "value", "error", "abandoned")

    def __init__(self, key, deadline: float):
        self.key = key
        self.deadline = deadline
        self.done = threading.Event()
        self.lead = False  # woken to run the next batch rather than with an answer
        self.value = None
        self.error: BaseException | None = None
        self.abandoned = False


class Coalescer(Generic[K, V]):
    def __init__(
        self,
        fetch: Fetch,
        max_batch: int = 64,
        parallel: int = 2,
        clock: Callable[[], float] = time.monotonic,
        on_batch: Callable[[int], None] | None = None,
    ):
        self._fetch = fetch
        self._max_batch = max_batch
        self._parallel = parallel
        self._clock = clock
        self._on_batch = on_batch or (lambda size: None)
        self._guard = threading.Lock()
        self._waiting: list[_Waiter] = []
        self._running = 0

    def get(self, key: K, timeout: float) -> V | None:
        """The value of ``key`` (None when the backend has none), within ``timeout`` seconds."""
        waiter = _Waiter(key, self._clock() + timeout)
        with self._guard:
            self._waiting.append(waiter)
            lead = self._running < self._parallel
            if lead:
                self._running += 1
        while True:
            if lead:
                self._run_batch()
                if waiter.done.is_set() and not waiter.lead:
                    break
            remaining = waiter.deadline - self._clock()
            if remaining <= 0 or not waiter.done.wait(remaining):
                with self._guard:
                    if not waiter.done.is_set():
                        waiter.abandoned = True
                        raise QueryTimedOut("the lookup's batch did not finish before the deadline")
            if waiter.lead:  # our turn to run a batch; our own key may be in it
                waiter.lead, lead = False, True
                waiter.done.clear()
                continue
            break
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    def _take(self) -> list[_Waiter]:
        """The next batch: waiting callers that still want an answer, one per key at most."""
        with self._guard:
            now = self._clock()
            alive = [w for w in self._waiting if not w.abandoned and w.deadline > now]
            for stale in self._waiting:
                if stale.deadline <= now and not stale.abandoned:
                    stale.error = QueryTimedOut("the deadline passed while the lookup waited for its batch")
                    stale.done.set()
            batch, self._waiting = [], []
            keys: set = set()
            for waiter in alive:
                if len(keys) >= self._max_batch and waiter.key not in keys:
                    self._waiting.append(waiter)
                    continue
                keys.add(waiter.key)
                batch.append(waiter)
            return batch

    def _run_batch(self) -> None:
        batch = self._take()
        try:
            if batch:
                keys = list(dict.fromkeys(w.key for w in batch))
                timeout = max(w.deadline for w in batch) - self._clock()
                self._on_batch(len(keys))
                try:
                    found = self._fetch(keys, max(timeout, 0.001))
                except BaseException as error:  # noqa: BLE001 - every waiter of the batch gets it
                    _finish(batch, error=error)
                else:
                    _finish(batch, found=found)
        finally:
            with self._guard:
                # Hand the next batch to a caller that is waiting anyway; else this slot is free.
                successor = next((w for w in self._waiting if not w.abandoned), None)
                if successor is not None:
                    successor.lead = True
                    successor.done.set()
                else:
                    self._running -= 1


def _finish(batch: Iterable[_Waiter], found: dict | None = None, error: BaseException | None = None) -> None:
    for waiter in batch:
        if error is not None:
            waiter.error = error
        else:
            waiter.value = found.get(waiter.key)
        waiter.done.set()
