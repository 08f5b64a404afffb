"""The delivery pipeline behind a client: a bounded queue, the batch being filled and the consumer thread.

Recording never blocks. Accepted events wait in the queue; when it is full the newest event is
dropped and counted, so a slow or unreachable sink costs events, never the caller's latency. The
consumer hands events to the sink in batches, as the sink's `batching` asks: at a number of
events, a number of bytes or an age of the oldest event, whichever comes first.

A process forked from one with a client (gunicorn's `--preload`, multiprocessing) gets a client of
its own: an empty queue, new counters, a consumer thread and, for a sink with `after_fork`, new
connections. What the parent had queued stays the parent's to deliver. `flush()` and `close()`
also work from the sink's callbacks (`on_error`), which run on the consumer's or the sink's thread.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from events.event import AnyEvent
from events.sinks import Sink, check_seconds

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # seconds since the epoch, like time.time

# How long close() waits, after closing the sink, for a batch the sink held to be settled.
CLOSED_SINK_GRACE = 0.5


def wait_bound(timeout: float | None) -> float:
    """Seconds a flush() or close() may wait: a number, 0 or more; None or infinity waits as long as it
    takes (up to the longest wait threading has). NaN, a negative number or another type is refused,
    naming it, before anything is done (a close() that failed half-way left the client closed, its
    events queued and its sink open, and the next close() said all was well)."""
    if timeout is None:
        return threading.TIMEOUT_MAX
    return min(check_seconds("timeout", timeout), threading.TIMEOUT_MAX)


@dataclass(frozen=True)
class ClientStats:
    """Counters of a client and its copies, since it was created."""

    accepted: int  # validated and queued
    dropped: int  # refused because the queue was full or the client closed
    emitted: int  # handed to the sink
    failed: int  # lost because the sink raised while taking them
    abandoned: int  # not yet handed to the sink when close() ran out of time
    pending: int  # accepted and not yet handed to the sink (queued, batched or being emitted)


@dataclass
class _Marker:
    """Put in the queue behind the events it waits for; the consumer sets `done` on reaching it.

    A flush marker also waits, until `deadline` (time.monotonic), for the sink's own deliveries;
    `settled` says whether they all ended by then."""

    stop: bool
    done: threading.Event
    deadline: float = 0.0
    settled: bool = True


class Pipeline:
    """The queue, the batch being filled and the consumer thread, shared by a client and its copies."""

    # Every pipeline of the process, for the fork hooks at the end of the module.
    live: weakref.WeakSet[Pipeline] = weakref.WeakSet()

    def __init__(self, sink: Sink, queue_size: int, clock: Clock, background: bool):
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be a whole number, at least 1, got {queue_size!r}")
        self.sink = sink
        self.batching = sink.batching
        self.clock = clock
        # Each event waits with the clock reading of its arrival: a batch's age is its oldest event's wait.
        self.queue: queue.Queue[tuple[float, AnyEvent] | _Marker] = queue.Queue(maxsize=queue_size)
        self.lock = threading.Lock()  # guards the counters and `closed`
        self.closed = False
        self.broken = False  # the consumer thread failed: nothing more reaches the sink
        self.close_done = threading.Event()  # set when the first close() has finished
        self.given_up = False  # close() ran out of time: the consumer hands nothing more to the sink
        self.background = background
        self.accepted = self.dropped = self.emitted = self.failed = self.abandoned = 0
        self.drop_reasons: set[str] = set()  # why events were dropped, each logged at its first drop
        self.in_sink = 0  # events of the batch the sink is taking now
        # The batch is touched only by the consumer: the thread, or the caller of pump() without one.
        self.batch: list[AnyEvent] = []
        self.taken: collections.deque[tuple[float, AnyEvent] | _Marker] = collections.deque()  # off the queue
        self.batch_bytes = 0
        self.batch_started = 0.0
        self.thread: threading.Thread | None = None
        self._finalizer = None  # multiprocessing's, when it is in use (_close_at_exit)
        if background:
            self._start_consumer()
            self._close_at_exit()
        Pipeline.live.add(self)

    def _close_at_exit(self) -> None:
        """A forgotten close() must not cost the events still queued when the program ends. A
        `multiprocessing` child (Process, Pool) ends with os._exit, where atexit's handlers do not
        run but multiprocessing's finalizers do."""
        atexit.register(self.close, 5.0)
        self._close_in_multiprocessing_child()

    def _close_in_multiprocessing_child(self) -> None:
        util = sys.modules.get("multiprocessing.util")
        if util is not None:  # not imported: no multiprocessing child can end this process
            self._finalizer = util.Finalize(self, self.close, args=(5.0,), exitpriority=10)

    def _start_consumer(self) -> None:
        self.thread = threading.Thread(target=self._run, name="events-consumer", daemon=True)
        self.thread.start()

    def _on_consumer_thread(self) -> bool:
        return self.thread is threading.current_thread()

    # -- producer side (any thread) ----------------------------------------------------------
    def put(self, event: AnyEvent) -> bool:
        with self.lock:
            if not self.closed and not self.broken:
                try:
                    self.queue.put_nowait((self.clock(), event))
                    self.accepted += 1
                    return True
                except queue.Full:
                    pass
            self.dropped += 1
            dropped, closed, broken = self.dropped, self.closed, self.broken
        if closed:
            reason = "the client is closed"
        elif broken:
            reason = "the client's consumer thread failed (its error is in the log)"
        else:
            reason = f"the queue is full ({self.queue.maxsize} events)"
        # Log the first drop of each reason and then every thousandth, so a full queue cannot flood
        # the log. Counted together, a record() after close() went unlogged once the queue had
        # been full (a drop that is no thousandth), and returned None without a word.
        first = reason not in self.drop_reasons
        self.drop_reasons.add(reason)
        if first or dropped % 1000 == 0:
            log.warning("dropped an event because %s; %d dropped so far", reason, dropped)
        return False

    def stats(self) -> ClientStats:
        with self.lock:
            return ClientStats(
                accepted=self.accepted,
                dropped=self.dropped,
                emitted=self.emitted,
                failed=self.failed,
                abandoned=self.abandoned,
                pending=self.accepted - self.emitted - self.failed,
            )

    def flush(self, timeout: float | None) -> bool:
        """Hand everything accepted so far to the sink, and wait for a sink with `flush` (KafkaSink) to
        have each delivery confirmed or reported; False if that did not happen within `timeout`."""
        timeout = wait_bound(timeout)
        deadline = time.monotonic() + timeout
        if self.thread is None or self._on_consumer_thread():  # no thread, or called from a callback on it
            self.drain()
            return time.monotonic() <= deadline and self._flush_sink(deadline)
        if self.closed:  # the stop marker is queued: what is queued goes to the sink before it
            return self.close_done.wait(timeout) and self.stats().pending == 0
        if not self.thread.is_alive():
            return self.stats().pending == 0
        marker = _Marker(stop=False, done=threading.Event(), deadline=deadline)
        try:
            self.queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(max(0.0, deadline - time.monotonic())) and marker.settled

    def close(self, timeout: float | None) -> bool:
        timeout = wait_bound(timeout)  # before anything changes: a refused close() leaves the client open
        with self.lock:
            closing_already = self.closed
            self.closed = True
        if closing_already:  # a second close(): the first one's outcome, once it is known
            return self.close_done.wait(timeout) and self._all_handed_over()
        atexit.unregister(self.close)
        if self._finalizer is not None:
            self._finalizer.cancel()
        deadline = time.monotonic() + timeout
        try:
            if self.thread is None or self._on_consumer_thread():  # no thread, or called from a callback on it
                self.drain()
                self.given_up = True  # the consumer ends when the callback returns
            else:
                self._stop_consumer(deadline, timeout)
            try:
                self.sink.close()
            except Exception:
                log.exception("closing the sink failed")
            if self.thread is not None and self.thread.is_alive() and not self._on_consumer_thread():
                # A closed sink reports what it still held at once (KafkaSink, between two events):
                # let it, so the answer says so; a request under way takes its own time.
                self.thread.join(CLOSED_SINK_GRACE)
            return self._all_handed_over()
        finally:
            self.close_done.set()

    def _all_handed_over(self) -> bool:
        """Nothing abandoned and no batch still with the sink: every event accepted has been
        emitted (delivered, or reported by the sink) or counted as failed."""
        with self.lock:
            return self.abandoned == 0 and self.in_sink == 0

    def _stop_consumer(self, deadline: float, timeout: float) -> None:
        # If even the marker finds no room, the consumer is stuck; what is left counts as abandoned.
        if self.thread.is_alive():
            with contextlib.suppress(queue.Full):
                self.queue.put(_Marker(stop=True, done=threading.Event()), timeout=timeout)
        self.thread.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            # Still running after the time given, or ended by a failure of its own: what it has
            # not handed over by now, it never will.
            self.given_up = True
            self.abandoned = self.accepted - self.emitted - self.failed - self.in_sink
            abandoned, in_sink = self.abandoned, self.in_sink
        if abandoned or in_sink:
            log.warning(
                "close() gave up after %.1fs with %d events not yet handed to the sink and %d still with it"
                " (a batch under way: delivered or reported by the sink if it ends before the program does)",
                *(timeout, abandoned, in_sink),
            )

    # -- consumer side -----------------------------------------------------------------------
    def pump(self) -> None:
        """Without blocking: batch what is queued, and emit every batch that is full or old enough."""
        self._consume(None)

    def drain(self) -> None:
        """Emit everything queued, due or not (flush and close without a consumer thread)."""
        self._consume(None)
        self._emit_batch()

    def _run(self) -> None:
        stopped = False
        try:
            while not stopped and not self.given_up:
                try:
                    first = self.queue.get(timeout=self._seconds_until_due())
                except queue.Empty:
                    first = None
                stopped = self._consume(first)
        except Exception:
            # The sink's errors are caught where it is called; this is a failure of the consumer
            # itself. Recording drops events from now on, and close() counts what is left as abandoned.
            with self.lock:
                self.broken = True
            log.exception("the events consumer thread failed: no more events are handed to the sink")

    def _consume(self, first: tuple[float, AnyEvent] | _Marker | None) -> bool:
        """Take `first` and what is queued now, then emit the batch if it is old enough.

        Returns True when a stop marker was taken (the consumer then ends).
        """
        if first is not None:
            self.taken.append(first)
        for _ in range(self.queue.qsize()):  # what is queued now; later arrivals wait for the next round
            try:
                self.taken.append(self.queue.get_nowait())
            except queue.Empty:
                break
        # Taken items wait in `taken`, not in a local list: a flush() or close() from a callback
        # of the sink (on this thread, inside an emit below) goes on with them where this left off.
        while self.taken:
            item = self.taken.popleft()
            if isinstance(item, _Marker):
                self._emit_batch()
                if not item.stop:
                    item.settled = self._flush_sink(item.deadline)
                item.done.set()
                if item.stop:
                    return True
            else:
                self._add(*item)
        if self.batch and self._batch_age() >= self.batching.interval:
            self._emit_batch()
        return False

    def _add(self, arrived: float, event: AnyEvent) -> None:
        size = len(event.json) + 1  # one line of JSON each
        if self.batch and self.batch_bytes + size > self.batching.max_bytes:
            self._emit_batch()
        if not self.batch:
            self.batch_started = arrived
        self.batch.append(event)
        self.batch_bytes += size
        if len(self.batch) >= self.batching.max_events or self.batch_bytes >= self.batching.max_bytes:
            self._emit_batch()

    def _batch_age(self) -> float:
        age = self.clock() - self.batch_started
        return age if age >= 0 else float("inf")  # the wall clock went back: send rather than wait

    def _seconds_until_due(self) -> float | None:
        if not self.batch:
            return None  # nothing waits: sleep until an event or a marker arrives
        return max(0.0, self.batching.interval - self._batch_age())

    def _flush_sink(self, deadline: float) -> bool:
        """Let a sink that delivers in the background (one with `flush`) finish, until `deadline`."""
        flush = getattr(self.sink, "flush", None)
        if flush is None:
            return True
        try:
            return bool(flush(max(0.0, deadline - time.monotonic())))
        except Exception:
            log.exception("flushing the sink failed")
            return False

    def _emit_batch(self) -> None:
        if not self.batch:
            return
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        with self.lock:
            if self.given_up:  # counted as abandoned by close(): not handed over after all
                return
            self.in_sink = len(batch)
        try:
            self.sink.emit(batch)
        except Exception:
            log.exception("the sink raised on a batch of %d events; they are lost", len(batch))
            with self.lock:
                self.failed += len(batch)
                self.in_sink = 0
        else:
            with self.lock:
                self.emitted += len(batch)
                self.in_sink = 0

    # -- fork ------------------------------------------------------------------------------------
    def _hold_for_fork(self) -> None:
        self.lock.acquire()  # no put() in the middle of the queue when the process forks
        self.queue.mutex.acquire()

    def _release_after_fork(self) -> None:
        self.queue.mutex.release()
        self.lock.release()

    def _start_again_in_child(self) -> None:
        """In a forked child: the parent's queue, batch and counts are the parent's; start afresh."""
        self.lock = threading.Lock()
        self.queue = queue.Queue(maxsize=self.queue.maxsize)
        self.batch, self.batch_bytes, self.taken = [], 0, collections.deque()
        self.accepted = self.dropped = self.emitted = self.failed = self.abandoned = self.in_sink = 0
        self.drop_reasons = set()
        self.broken = False
        after_fork = getattr(self.sink, "after_fork", None)
        if after_fork is not None:
            after_fork()
        if self.background and not self.closed:
            self._start_consumer()
            # atexit's registration came with the fork. A multiprocessing child clears the
            # parent's finalizers as it starts, then runs its after-fork hooks: register there.
            util = sys.modules.get("multiprocessing.util")
            if util is not None:
                util.register_after_fork(self, Pipeline._close_in_multiprocessing_child)


_held_for_fork: list[Pipeline] = []


def _before_fork() -> None:
    _held_for_fork[:] = list(Pipeline.live)
    for pipeline in _held_for_fork:
        pipeline._hold_for_fork()


def _after_fork_in_parent() -> None:
    for pipeline in _held_for_fork:
        pipeline._release_after_fork()
    _held_for_fork.clear()


def _after_fork_in_child() -> None:
    for pipeline in _held_for_fork:
        pipeline._start_again_in_child()
    _held_for_fork.clear()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
