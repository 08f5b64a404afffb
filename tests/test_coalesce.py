"""The coalescer alone, with a fetch function the test controls (no ClickHouse: pure unit tests)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.backend import QueryFailed, QueryTimedOut
from server.coalesce import Coalescer


class HeldFetch:
    """Answers key -> key * 10 for even keys (odd ones are unknown), once the test lets it."""

    def __init__(self, fail: bool = False):
        self.batches: list[list[int]] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, keys: list[int], timeout: float) -> dict[int, int]:
        self.batches.append(list(keys))
        self.started.release()
        assert self.release.wait(30)
        if self.fail:
            raise QueryFailed("the store is down")
        return {key: key * 10 for key in keys if key % 2 == 0}


def test_an_idle_lookup_runs_at_once_alone():
    fetch = HeldFetch()
    fetch.release.set()
    coalescer = Coalescer(fetch)
    assert coalescer.get(4, timeout=5) == 40
    assert coalescer.get(3, timeout=5) is None
    assert fetch.batches == [[4], [3]]


def test_lookups_arriving_while_a_batch_runs_share_the_next_one():
    fetch = HeldFetch()
    coalescer = Coalescer(fetch, parallel=1)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalescer.get, 0, 30)
        assert fetch.started.acquire(timeout=30)  # the first batch is held with key 0 alone
        rest = [pool.submit(coalescer.get, key, 30) for key in (1, 2, 3, 2, 5, 6)]
        while len(coalescer._waiting) < len(rest):  # every later lookup is waiting
            threading.Event().wait(0.01)
        fetch.release.set()
        answers = [first.result(30)] + [future.result(30) for future in rest]
    assert answers == [0, None, 20, None, 20, None, 60]
    assert [sorted(keys) for keys in fetch.batches] == [[0], [1, 2, 3, 5, 6]]  # one query for the six, 2 once


def test_a_failed_batch_fails_each_of_its_lookups():
    fetch = HeldFetch(fail=True)
    fetch.release.set()
    coalescer = Coalescer(fetch)
    with pytest.raises(QueryFailed):
        coalescer.get(2, timeout=5)
    with pytest.raises(QueryFailed):  # and the coalescer is not stuck afterwards
        coalescer.get(4, timeout=5)


def test_a_lookup_whose_deadline_passes_while_waiting_times_out_and_others_are_answered():
    fetch = HeldFetch()
    coalescer = Coalescer(fetch, parallel=1)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(coalescer.get, 2, 30)
        assert fetch.started.acquire(timeout=30)
        with pytest.raises(QueryTimedOut):
            coalescer.get(4, timeout=0.05)  # waits behind the held batch past its deadline
        later = pool.submit(coalescer.get, 6, 30)
        while not coalescer._waiting or coalescer._waiting[-1].key != 6:
            threading.Event().wait(0.01)
        fetch.release.set()
        assert (first.result(30), later.result(30)) == (20, 60)
    assert fetch.batches == [[2], [6]]  # the lookup that gave up was not asked for


def test_batches_ending_together_hand_on_their_slots_and_leave_none_taken():
    """Two held batches released at once, callers queued behind them: afterwards both slots are free.

    Both ending batches once handed their slot to the same queued caller, who ran one batch: the
    other slot stayed taken for good, and once both were lost every lookup waited out its deadline.
    """
    for _ in range(30):
        fetch = HeldFetch()
        coalescer = Coalescer(fetch, parallel=2)
        with ThreadPoolExecutor(8) as pool:
            held = [pool.submit(coalescer.get, key, 30) for key in (0, 2)]
            assert fetch.started.acquire(timeout=30) and fetch.started.acquire(timeout=30)
            queued = [pool.submit(coalescer.get, key, 30) for key in (4, 6, 8)]
            while coalescer.pending < len(held) + len(queued):
                threading.Event().wait(0.001)
            fetch.release.set()
            assert [future.result(30) for future in held + queued] == [0, 20, 40, 60, 80]
        assert coalescer.pending == 0
        # Both slots free again: two lookups held at once each run a batch of their own at once.
        second = HeldFetch()
        coalescer._fetch = second
        with ThreadPoolExecutor(2) as pool:
            both = [pool.submit(coalescer.get, key, 5) for key in (10, 12)]
            assert second.started.acquire(timeout=5) and second.started.acquire(timeout=5), "a slot stayed taken"
            second.release.set()
            assert [future.result(30) for future in both] == [100, 120]


class SlowFetch:
    """Answers key -> key * 10 after ``seconds``, or raises QueryTimedOut when given less time."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.timeouts: list[float] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, keys: list[int], timeout: float) -> dict[int, int]:
        self.timeouts.append(timeout)
        self.started.release()
        if keys == [0]:  # the batch that keeps the slot busy while the others queue
            assert self.release.wait(30)
            return {0: 0}
        if timeout < self.seconds:
            time.sleep(timeout)
            raise QueryTimedOut("ClickHouse did not answer in time")
        time.sleep(self.seconds)
        return {key: key * 10 for key in keys}


def test_a_caller_runs_a_batch_for_no_longer_than_its_own_deadline_and_longer_ones_go_on():
    """Callers of 0.1 s and 30 s queue behind a busy slot; whoever runs their batch (either may:
    ten rounds), the short one is answered DEADLINE_EXCEEDED in its time, not held for as long as
    the long one may wait, and the long one is answered."""
    for _ in range(10):
        fetch = SlowFetch(seconds=0.3)
        coalescer = Coalescer(fetch, parallel=1)
        with ThreadPoolExecutor(3) as pool:
            busy = pool.submit(coalescer.get, 0, 30)
            assert fetch.started.acquire(timeout=30)
            short = pool.submit(coalescer.get, 2, 0.1)
            long = pool.submit(coalescer.get, 4, 30)
            while coalescer.pending < 3:
                threading.Event().wait(0.001)
            fetch.release.set()
            with pytest.raises(QueryTimedOut):
                short.result(30)
            assert (busy.result(30), long.result(30)) == (0, 40)
