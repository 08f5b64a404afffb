"""The delivery pipeline behind a client: a bounded queue, the batch being filled and the consumer thread.

Recording never blocks. Accepted events wait in the queue; when it is full the newest event is
dropped and counted, so a slow or unreachable sink costs events, never the caller's latency. The
consumer hands events to the sink in batches, as the sink's `batching` asks: at a number of
events, a number of bytes or an age of the oldest event, whichever comes first.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from events.event import AnyEvent
from events.sinks import Sink

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # seconds since the epoch, like time.time


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

    def __init__(self, sink: Sink, queue_size: int, clock: Clock, background: bool):
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.sink = sink
        self.batching = sink.batching
        self.clock = clock
        # Each event waits with the clock reading of its arrival: a batch's age is its oldest event's wait.
        self.queue: queue.Queue[tuple[float, AnyEvent] | _Marker] = queue.Queue(maxsize=queue_size)
        self.lock = threading.Lock()  # guards the counters and `closed`
        self.closed = False
        self.accepted = self.dropped = self.emitted = self.failed = self.abandoned = 0
        # The batch is touched only by the consumer: the thread, or the caller of pump() without one.
        self.batch: list[AnyEvent] = []
        self.batch_bytes = 0
        self.batch_started = 0.0
        self.thread: threading.Thread | None = None
        if background:
            self.thread = threading.Thread(target=self._run, name="events-consumer", daemon=True)
            self.thread.start()
            # A forgotten close() must not cost the events still queued when the program ends.
            atexit.register(self.close, 5.0)

    # -- producer side (any thread) ----------------------------------------------------------
    def put(self, event: AnyEvent) -> bool:
        with self.lock:
            if not self.closed:
                try:
                    self.queue.put_nowait((self.clock(), event))
                    self.accepted += 1
                    return True
                except queue.Full:
                    pass
            self.dropped += 1
            dropped, closed = self.dropped, self.closed
        # Log the first drop and then every thousandth, so a full queue cannot flood the log.
        if dropped == 1 or dropped % 1000 == 0:
            reason = "the client is closed" if closed else f"the queue is full ({self.queue.maxsize} events)"
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

    def flush(self, timeout: float) -> bool:
        """Hand everything accepted so far to the sink, and wait for a sink with `flush` (KafkaSink) to
        have each delivery confirmed or reported; False if that did not happen within `timeout`."""
        deadline = time.monotonic() + timeout
        if self.thread is None:
            self.drain()
            return self._flush_sink(deadline)
        if not self.thread.is_alive():
            return self.stats().pending == 0
        marker = _Marker(stop=False, done=threading.Event(), deadline=deadline)
        try:
            self.queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(max(0.0, deadline - time.monotonic())) and marker.settled

    def close(self, timeout: float) -> bool:
        with self.lock:
            if self.closed:
                return self.abandoned == 0
            self.closed = True
        atexit.unregister(self.close)
        deadline = time.monotonic() + timeout
        if self.thread is None:
            self.drain()
        else:
            # If even the marker finds no room, the consumer is stuck; what is left counts as abandoned.
            with contextlib.suppress(queue.Full):
                self.queue.put(_Marker(stop=True, done=threading.Event()), timeout=timeout)
            self.thread.join(max(0.0, deadline - time.monotonic()))
            if self.thread.is_alive():
                with self.lock:
                    self.abandoned = self.accepted - self.emitted - self.failed
                log.warning(
                    "close() gave up after %.1fs with %d events not yet handed to the sink", timeout, self.abandoned
                )
        try:
            self.sink.close()
        except Exception:
            log.exception("closing the sink failed")
        return self.abandoned == 0

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
        while not stopped:
            try:
                first = self.queue.get(timeout=self._seconds_until_due())
            except queue.Empty:
                first = None
            stopped = self._consume(first)

    def _consume(self, first: tuple[float, AnyEvent] | _Marker | None) -> bool:
        """Take `first` and what is queued now, then emit the batch if it is old enough.

        Returns True when a stop marker was taken (the consumer then ends).
        """
        items = [first] if first is not None else []
        for _ in range(self.queue.qsize()):  # what is queued now; later arrivals wait for the next round
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        for item in items:
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
        try:
            self.sink.emit(batch)
        except Exception:
            log.exception("the sink raised on a batch of %d events; they are lost", len(batch))
            with self.lock:
                self.failed += len(batch)
        else:
            with self.lock:
                self.emitted += len(batch)
