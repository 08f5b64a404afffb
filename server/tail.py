"""Tails of job logs: one poller shared by every tail, whatever the number of clients.

A tail (StreamJobLogs) subscribes to its job here. One thread polls ClickHouse every
``interval`` seconds for all the jobs being tailed at once (two statements a tick: which jobs
ended, and which of their lines landed since the last tick) and hands each job's new lines to
the subscriptions of that job. Ten clients tailing one job, or a hundred tailing a hundred jobs,
cost the same statements.

"Landed since" is the rows' `ingested_at` (ClickHouse's clock when the row was inserted). An
insert becomes visible a little after that moment, so a poll reaches ``RECENT_MS`` back before
the previous poll's clock, and every ``SWEEP_MS`` a sweep reaches ``OVERLAP_MS`` back before the
previous sweep's, for the inserts that took longer; lines already handed out are skipped by
their key. A sweep asks for the keys first and only then for the lines it lacks: reading every
line of the last seconds again and again would cost more than the tails themselves. When it
lacks many (a large insert that was slow to show), it reads its window whole instead: thousands
of keys in one statement took longer than a poll may, and every retry failed the same way. A
subscriber gets the earliest moment a poll can still reach back to (``since_ms``): its history
read (a plain page query) may show lines landed after that moment too, and it skips them when
they arrive.

When a job's end (a completed, failed or cancelled event) has landed, its tails get the lines
of ``linger`` seconds more (log shippers lag behind the scheduler) and a last sweep, and end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from core.backend import QueryFailed
from server.logs import JobRef, LogQueries, LogRow

log = logging.getLogger(__name__)

# How far back a poll reaches before the previous poll's clock: what an insert usually takes
# from its rows' ingested_at to being visible ...
RECENT_MS = 500
# ... and how far a sweep reaches before the previous sweep's clock, every SWEEP_MS: longer than
# any insert takes.
OVERLAP_MS = 5_000
SWEEP_MS = 2_000
# A client that falls this many lines, or this many bytes of messages, behind is cut off rather
# than held in memory: lines of an earlier poll it has not taken yet, with the new ones. A poll's
# lines alone (a burst larger than this) are held for a client that has taken everything before.
MAX_BUFFERED_LINES = 100_000
MAX_BUFFERED_BYTES = 64 << 20
# A sweep asks for at most this many missing lines by key (they go to ClickHouse as a parameter,
# in the request's URL over HTTP); when more are missing it reads every line of its window again.
MAX_KEYS_ASKED = 500
# Polls failing for this long end every tail (the clients see UNAVAILABLE and can call again).
FAILING_SECONDS = 30.0


class End(Enum):
    JOB_ENDED = "the job has ended"
    CANCELLED = "the client went away"
    SHUTDOWN = "the server is stopping"
    TOO_SLOW = "the client read too slowly"
    STORE_FAILING = "the log store could not be read"


class Subscription:
    """One client's tail of one job: lines handed over by the hub, read by the client's thread."""

    def __init__(self, hub: TailHub, job: JobRef, since_ms: int):
        self.hub = hub
        self.job = job
        self.since_ms = since_ms
        self._lines: deque[LogRow] = deque()
        self._bytes = 0  # of the messages in _lines
        self._end: End | None = None
        self._ready = threading.Condition()

    def deliver(self, rows: list[LogRow], size: int | None = None) -> None:
        """Hand over ``rows``; ``size``, their messages' length, when the caller has it already."""
        with self._ready:
            if self._end is not None:
                return
            behind = bool(self._lines)  # lines of an earlier poll are still waiting to be taken
            self._lines.extend(rows)
            self._bytes += sum(len(row.message) for row in rows) if size is None else size
            if behind and (len(self._lines) > MAX_BUFFERED_LINES or self._bytes > MAX_BUFFERED_BYTES):
                self._lines.clear()
                self._bytes = 0
                self._end = End.TOO_SLOW
            self._ready.notify_all()

    def finish(self, end: End) -> None:
        with self._ready:
            if self._end is None:
                self._end = end
            self._ready.notify_all()

    def cancel(self) -> None:
        """The client went away: leave the hub and wake the reader."""
        self.hub.unsubscribe(self)
        self.finish(End.CANCELLED)

    def take(self, timeout: float) -> tuple[list[LogRow], End | None]:
        """The lines handed over so far (waiting up to ``timeout`` for some), and the end if reached."""
        with self._ready:
            if not self._lines and self._end is None:
                self._ready.wait(timeout)
            lines = list(self._lines)
            self._lines.clear()
            self._bytes = 0
            return lines, self._end


@dataclass
class JobTail:
    subscribers: list[Subscription] = field(default_factory=list)
    handed_out: dict[str, int] = field(default_factory=dict)  # line key -> ingested_ms, within the overlap
    ended_at_ms: int | None = None  # ClickHouse's clock when the hub first saw the job's end


class TailHub:
    """The shared poller (see the module's description)."""

    def __init__(
        self,
        logs: LogQueries,
        interval: float,
        linger: float,
        poll_timeout: float,
        on_poll: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logs = logs
        self.interval = interval
        self.linger_ms = int(linger * 1000)
        self.poll_timeout = poll_timeout
        self._on_poll = on_poll or (lambda jobs: None)
        self._clock = clock
        self._jobs: dict[JobRef, JobTail] = {}
        self._since_ms: int | None = None  # the earliest a poll reaches back to from now on
        self._clock_ms: int | None = None  # ClickHouse's clock at the last poll
        self._swept_ms = 0  # ... at the last sweep
        # Counts the restarts after a pause: a poll begun before one finds nothing it may hand out.
        self._epoch = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None

    @property
    def tails(self) -> int:
        with self._lock:
            return sum(len(tail.subscribers) for tail in self._jobs.values())

    def subscribe(self, job: JobRef, timeout: float) -> Subscription:
        """Follow ``job`` from now on; raises QueryFailed when ClickHouse's clock cannot be read."""
        if self._since_ms is None or not self._jobs:
            # The first tail, or the first after a pause: the polls start from ClickHouse's clock now.
            now_ms, _ = self.logs.ended([job], timeout)
            with self._lock:
                if not self._jobs:
                    self._since_ms, self._clock_ms = now_ms - OVERLAP_MS, None
                    self._epoch += 1
                    self._failing_since = None
        with self._lock:
            if self._closed.is_set():
                subscription = Subscription(self, job, self._since_ms)
                subscription.finish(End.SHUTDOWN)
                return subscription
            subscription = Subscription(self, job, self._since_ms)
            self._jobs.setdefault(job, JobTail()).subscribers.append(subscription)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="log-tail-poller", daemon=True)
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            tail = self._jobs.get(subscription.job)
            if tail is not None and subscription in tail.subscribers:
                tail.subscribers.remove(subscription)
                if not tail.subscribers:
                    del self._jobs[subscription.job]

    def close(self) -> None:
        """End every tail (SHUTDOWN) and stop polling."""
        self._closed.set()
        with self._lock:
            tails, self._jobs = list(self._jobs.values()), {}
        for tail in tails:
            for subscription in tail.subscribers:
                subscription.finish(End.SHUTDOWN)
        if self._thread is not None:
            self._thread.join(timeout=self.poll_timeout + self.interval + 1)

    def _next_poll(self) -> tuple[list[JobRef], int, bool, int] | None:
        """(the jobs, the moment to reach back to, whether it is a sweep, the epoch); None: nothing to poll."""
        with self._lock:
            jobs, floor_ms, clock_ms, epoch = list(self._jobs), self._since_ms, self._clock_ms, self._epoch
            if not jobs or floor_ms is None:
                return None
            if clock_ms is None:
                return jobs, floor_ms, True, epoch
            ending = any(
                tail.ended_at_ms is not None and clock_ms - tail.ended_at_ms >= self.linger_ms
                for tail in self._jobs.values()
            )
            if ending or clock_ms - self._swept_ms >= SWEEP_MS:
                return jobs, floor_ms, True, epoch
            return jobs, max(floor_ms, clock_ms - RECENT_MS), False, epoch

    def _run(self) -> None:
        while not self._closed.wait(self.interval):
            self._tick()

    def _tick(self) -> None:
        poll = self._next_poll()
        if poll is None:  # no tails: a failure before this pause says nothing about the polls after it
            self._failing_since = None
            return
        try:
            self._poll(*poll)
            self._failing_since = None
        except QueryFailed as error:
            self._failed(error)
        except Exception:
            log.exception("the log tail poll failed")
            self._failed(None)

    def _poll(self, jobs: list[JobRef], since_ms: int, sweep: bool, epoch: int) -> None:
        # The clock first: lines landing while the lines query runs are found by the next poll.
        now_ms, ended = self.logs.ended(jobs, self.poll_timeout)
        find = self._missing if sweep else self._landed
        landed = find(jobs, since_ms)
        self._on_poll(len(jobs))
        with self._lock:
            if epoch != self._epoch:
                # Every tail left during the poll and new ones came: they start from a later
                # moment than this poll's window, whose lines their history has already sent.
                return
            self._clock_ms = now_ms
            if sweep:
                # The next sweep reaches OVERLAP_MS back before this one, and no poll reaches further.
                self._swept_ms = now_ms
                self._since_ms = max(self._since_ms or since_ms, now_ms - OVERLAP_MS)
            for job in jobs:
                tail = self._jobs.get(job)
                if tail is None:  # every subscriber left during the poll
                    continue
                # Each key once: two inserts that raced past the first-seen gate leave two rows of
                # a line until a merge (on a ClickHouse server), and a poll may read both.
                fresh = []
                for row in landed.get(job, []):
                    if row.key not in tail.handed_out:
                        tail.handed_out[row.key] = row.ingested_ms
                        fresh.append(row)
                tail.handed_out = {
                    key: ingested for key, ingested in tail.handed_out.items() if ingested >= self._since_ms
                }
                if fresh:
                    size = sum(len(row.message) for row in fresh)  # once, whatever the number of tails
                    for subscription in tail.subscribers:
                        subscription.deliver(fresh, size)
                if job in ended and tail.ended_at_ms is None:
                    tail.ended_at_ms = now_ms
                # Only a sweep ends a tail: it has seen the inserts that were slow to show.
                if sweep and tail.ended_at_ms is not None and now_ms - tail.ended_at_ms >= self.linger_ms:
                    for subscription in tail.subscribers:
                        subscription.finish(End.JOB_ENDED)
                    del self._jobs[job]

    def _landed(self, jobs: list[JobRef], since_ms: int) -> dict[JobRef, list[LogRow]]:
        return self.logs.landed_since(jobs, since_ms, self.poll_timeout)

    def _missing(self, jobs: list[JobRef], since_ms: int) -> dict[JobRef, list[LogRow]]:
        """A sweep: the keys of every line landed since ``since_ms``, then the lines of those not handed out."""
        keys = self.logs.landed_keys(jobs, since_ms, self.poll_timeout)
        with self._lock:
            missing = [
                key
                for job, found in keys.items()
                for key in found
                if job in self._jobs and key not in self._jobs[job].handed_out
            ]
        if not missing:
            return {}
        if len(missing) > MAX_KEYS_ASKED:  # a large insert that was slow to show: read the window whole
            return self.logs.landed_since(jobs, since_ms, self.poll_timeout)
        return self.logs.landed_lines(jobs, since_ms, missing, self.poll_timeout)

    def _failed(self, error: QueryFailed | None) -> None:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("the log tail poll failed, retrying: %s", error)
        if now - self._failing_since < FAILING_SECONDS:
            return
        log.error("the log tail poll has failed for %.0fs: ending every tail", now - self._failing_since)
        with self._lock:
            tails, self._jobs = list(self._jobs.values()), {}
        for tail in tails:
            for subscription in tail.subscribers:
                subscription.finish(End.STORE_FAILING)
        self._failing_since = None
