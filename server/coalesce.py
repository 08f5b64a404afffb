"""Lookups that arrive together answered by one query: ClickHouse's fixed cost paid once per batch.

A caller that finds a batch slot free runs a batch at once with whatever keys are waiting, its
own included, so an idle server adds no delay. Callers that arrive meanwhile wait; when a batch
ends, one of them runs the next with every key waiting by then (up to ``max_batch``). At most
``parallel`` batches run at a time, so the backend's connections stay busy without flooding it.
A caller waits no longer than its own timeout, and runs a batch for no longer either: should
ClickHouse not answer within it, the keys of callers with time left go back to wait for the next.

Every caller waits on one condition: when a batch ends, the callers whose keys wait for one
wake, and the first to find a free slot runs the next batch, its own key first. No slot is
handed from one thread to another, so none can be lost between them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from core.backend import QueryTimedOut

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# fetch(keys, seconds) -> {key: value} for the keys found; a key that is absent has no value.
Fetch = Callable[[list, float], dict]


class _Waiter:
    __slots__ = ("key", "deadline", "queued", "answered", "value", "error")

    def __init__(self, key, deadline: float):
        self.key = key
        self.deadline = deadline
        self.queued = True  # in ``_waiting``: its key is in no batch
        self.answered = False
        self.value = None
        self.error: BaseException | None = None


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
        self._changed = threading.Condition()
        self._waiting: list[_Waiter] = []  # callers whose key is in no batch yet, oldest first
        self._running = 0
        self._pending = 0

    @property
    def pending(self) -> int:
        """Callers inside ``get``: waiting for a batch or for the one their key is in."""
        return self._pending

    def get(self, key: K, timeout: float) -> V | None:
        """The value of ``key`` (None when the backend has none), within ``timeout`` seconds."""
        waiter = _Waiter(key, self._clock() + timeout)
        with self._changed:
            self._pending += 1
            self._waiting.append(waiter)
        try:
            while True:
                batch = self._next_batch_or_wait(waiter)
                if batch is None:
                    break
                self._run(batch, waiter)
        finally:
            with self._changed:
                self._pending -= 1
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    def _next_batch_or_wait(self, waiter: _Waiter) -> list[_Waiter] | None:
        """A batch for this caller to run (its key is in none yet and a slot is free), or None once
        its own answer is in or its deadline has passed."""
        with self._changed:
            while not waiter.answered:
                remaining = waiter.deadline - self._clock()
                if remaining <= 0:
                    if waiter.queued:
                        self._waiting.remove(waiter)
                        waiter.error = QueryTimedOut("the deadline passed while the lookup waited for its batch")
                    else:
                        waiter.error = QueryTimedOut("the lookup's batch did not finish before the deadline")
                    waiter.answered = True
                    break
                if waiter.queued and self._running < self._parallel:
                    self._running += 1
                    return self._take(waiter)
                self._changed.wait(remaining)
            return None

    def _take(self, runner: _Waiter) -> list[_Waiter]:
        """The next batch (under the lock): the runner's key first, then those of the callers
        waiting still in time, up to ``max_batch`` keys."""
        now = self._clock()
        batch, keep, keys = [], [], set()
        for waiter in [runner, *(w for w in self._waiting if w is not runner)]:
            if waiter.deadline <= now:  # asked for by no batch
                waiter.queued, waiter.answered = False, True
                waiter.error = QueryTimedOut("the deadline passed while the lookup waited for its batch")
            elif len(keys) >= self._max_batch and waiter.key not in keys:
                keep.append(waiter)
            else:
                keys.add(waiter.key)
                waiter.queued = False
                batch.append(waiter)
        self._waiting = keep
        return batch

    def _run(self, batch: list[_Waiter], runner: _Waiter) -> None:
        found: dict = {}
        error: BaseException | None = None
        try:
            if batch:  # empty when the runner's own deadline passed as it took the batch
                keys = list(dict.fromkeys(w.key for w in batch))
                self._on_batch(len(keys))
                found = self._fetch(keys, max(runner.deadline - self._clock(), 0.001))
        except BaseException as caught:  # noqa: BLE001 - every waiter of the batch gets it
            error = caught
        finally:
            with self._changed:
                now, again = self._clock(), []
                for waiter in batch:
                    if waiter.answered:  # gave up on its deadline meanwhile
                        continue
                    if isinstance(error, QueryTimedOut) and waiter is not runner and waiter.deadline > now:
                        waiter.queued = True  # the runner's time ran out, not this caller's
                        again.append(waiter)
                        continue
                    waiter.answered = True
                    waiter.error = error
                    waiter.value = None if error is not None else found.get(waiter.key)
                self._waiting[:0] = again
                self._running -= 1
                self._changed.notify_all()
