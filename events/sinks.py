"""Where events go: the `Sink` protocol and the small sinks (logger, no-op, filter, in-memory).

A sink receives batches from the client's consumer thread. It reports its own delivery failures
(to an `on_error` callback, or by keeping the events) instead of raising: by the time a batch
reaches a sink, the caller that recorded it has long moved on.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from events.event import AnyEvent

log = logging.getLogger(__name__)

# Undelivered events a sink keeps for take_undelivered() when no on_error takes them; past either
# bound the oldest are discarded and counted (a back end down for long must not grow the memory for
# ever). The bytes are the events' JSON: a process holds about twice that (the attributes too).
MAX_KEPT = 100_000
MAX_KEPT_BYTES = 64 << 20
# Reasons of failure a sink remembers for its log (a reason naming an event is one of its own).
MAX_REASONS = 1000
REASON_LOG_INTERVAL = 60.0  # seconds after which a reason's next failure is logged whatever the count


def check_seconds(name: str, value: object, *, above_zero: bool = False, at_most: float = float("inf")) -> float:
    """A sink's duration parameter as a number of seconds, refused by name if it is none: NaN, below
    0 (or at 0 where `above_zero`), over `at_most`, or not a number. A NaN or an overflowing
    request timeout made every request raise, and every event was lost."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (value > 0 if above_zero else value >= 0) or not value <= at_most:  # NaN fails both
        lowest = "more than 0" if above_zero else "0 or more"
        highest = f" and at most {at_most:g}" if at_most < float("inf") else ""
        raise ValueError(f"{name} must be a number of seconds, {lowest}{highest}, got {value!r}")
    return float(value)


def check_count(name: str, value: object) -> int:
    """A whole number, 0 or more, refused by name if it is none (1.5 retries, True retries)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more, got {value!r}")
    return value


@dataclass(frozen=True)
class Batching:
    """How the client groups events for a sink: a batch goes out at `max_events`, at `max_bytes`
    of JSON, or `interval` seconds after its first event, whichever comes first."""

    max_events: int = 1000
    max_bytes: int = 1 << 20
    interval: float = 1.0

    def __post_init__(self) -> None:
        if self.max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {self.max_events}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {self.max_bytes}")
        # NaN compares false with everything: a batch would never be old enough, nor due.
        if not 0 <= self.interval < float("inf"):
            raise ValueError(f"interval must be a number of seconds, 0 or more and finite, got {self.interval}")


class Sink(Protocol):
    """A destination for events. `emit` may block (it runs on the client's consumer thread).

    A sink that delivers in the background may also have `flush(timeout) -> bool`: wait until what
    it was given is delivered or reported, True if nothing is left outstanding. `Client.flush`
    calls it.
    """

    batching: Batching

    def emit(self, batch: Sequence[AnyEvent]) -> None: ...

    def close(self) -> None: ...


class DeliveryError(Exception):
    """Why a sink could not deliver some events: HTTP status and ClickHouse or Kafka error code if known."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.code = code


# Called with the events a sink gave up on and the reason; it runs on the sink's thread.
ErrorCallback = Callable[[list[AnyEvent], DeliveryError], None]


@dataclass
class DeliveryStats:
    """What a network sink did with the events it was given."""

    delivered: int = 0
    rejected: int = 0  # refused by the server for good (not retried)
    failed: int = 0  # gave up after retries, or undeliverable on close
    retries: int = 0
    resent_alone: int = 0  # ClickHouseSink: refused batches of joined inserts sent again on their own
    discarded: int = 0  # undelivered events kept for take_undelivered(), discarded oldest first past the limit


class FailedEvents:
    """Keeps a network sink's undelivered events from vanishing: hands them to `on_error`, or keeps them.

    Without a callback (or when it raises) the events stay in `events` for the owner to take.
    """

    def __init__(
        self, on_error: ErrorCallback | None, sink_name: str, max_kept: int = MAX_KEPT, max_bytes: int = MAX_KEPT_BYTES
    ):
        self.on_error = on_error
        self.sink_name = sink_name
        self.max_kept = max_kept
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._kept: collections.deque[AnyEvent] = collections.deque()
        self._kept_bytes = 0
        self.discarded = 0
        # Events given up on so far by reason, and when the reason was last logged (time.monotonic).
        self._given_up: dict[str, tuple[int, float]] = {}
        self.clock: Callable[[], float] = time.monotonic

    def report(self, events: list[AnyEvent], error: DeliveryError) -> None:
        self._log(len(events), str(error))
        if self.on_error is not None:
            try:
                self.on_error(events, error)
                return
            except Exception:
                log.exception("%s: on_error raised; keeping the %d events instead", self.sink_name, len(events))
        with self._lock:
            self._kept.extend(events)
            self._kept_bytes += sum(len(event.json) for event in events)
            over = 0
            while self._kept and (len(self._kept) > self.max_kept or self._kept_bytes > self.max_bytes):
                self._kept_bytes -= len(self._kept.popleft().json)
                over += 1
            before, self.discarded = self.discarded, self.discarded + over
        if over > 0 and (before == 0 or before // 10_000 != self.discarded // 10_000):
            log.warning(
                "%s keeps at most %d undelivered events or %d MiB of them: discarded the oldest, %d so far"
                " (take_undelivered() or on_error keep them)",
                *(self.sink_name, self.max_kept, self.max_bytes >> 20, self.discarded),
            )

    def _log(self, count: int, reason: str) -> None:
        """The first events given up on for a reason, then every thousandth after them, and the next
        after a minute without a line (an outage days after the last): KafkaSink reports each event
        on its own, and a broker out of reach logged a line an event (20,000 for a close that purged
        20,000)."""
        now = self.clock()
        with self._lock:
            if reason not in self._given_up and len(self._given_up) >= MAX_REASONS:
                self._given_up.clear()  # reasons that name an event each: forget them rather than grow
            before, logged = self._given_up.get(reason, (0, now))
            total = before + count
            due = before == 0 or before // 1000 != total // 1000 or now - logged >= REASON_LOG_INTERVAL
            self._given_up[reason] = (total, now if due else logged)
        if before == 0:
            log.error("%s could not deliver %d events: %s", self.sink_name, count, reason)
        elif due:
            log.error("%s could not deliver %d events so far: %s", self.sink_name, total, reason)

    def take(self) -> list[AnyEvent]:
        """The kept events, removed from the sink (e.g. to write them elsewhere or retry later)."""
        with self._lock:
            kept, self._kept, self._kept_bytes = self._kept, collections.deque(), 0
        return list(kept)


class _Counters:
    """Thread-safe DeliveryStats: updated by delivery threads, read as a snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = DeliveryStats()

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, amount in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + amount)

    def snapshot(self) -> DeliveryStats:
        with self._lock:
            return replace(self._stats)


class ReportsFailures:
    """What a sink that can fail to deliver an event keeps: its counts (`stats`) and the events
    it gave up on (to `on_error`, else kept for `take_undelivered()`)."""

    def _report_failures_to(self, on_error: ErrorCallback | None, sink_name: str, max_kept: int = MAX_KEPT) -> None:
        if max_kept < 0:
            raise ValueError(f"max_undelivered must not be negative, got {max_kept}")
        self._failures = FailedEvents(on_error, sink_name, max_kept)
        self._counters = _Counters()

    def _count_afresh(self) -> None:
        """In a forked child: counts and kept events of its own (the parent's stay the parent's)."""
        failures = self._failures
        self._report_failures_to(failures.on_error, failures.sink_name, failures.max_kept)
        self._failures.max_bytes = failures.max_bytes

    @property
    def stats(self) -> DeliveryStats:
        return replace(self._counters.snapshot(), discarded=self._failures.discarded)

    def take_undelivered(self) -> list[AnyEvent]:
        """Events given up on while no `on_error` callback took them; removed from the sink."""
        return self._failures.take()

    def _give_up(self, events: list[AnyEvent], error: DeliveryError, outcome: str = "failed") -> None:
        """Count `events` under `outcome` (a DeliveryStats field) and report them."""
        self._counters.add(**{outcome: len(events)})
        self._failures.report(events, error)


class NoopSink:
    """Discards every event."""

    batching = Batching(max_events=10_000, interval=1.0)

    def emit(self, batch: Sequence[AnyEvent]) -> None:
        pass

    def close(self) -> None:
        pass


class LoggerSink:
    """Logs each event as one line, `<topic> event <its JSON>`; for development and `analytics demo --sink logger`.

    Where its logger would show none of them (Python's logging unconfigured shows only warnings
    and worse), it says so once, as a warning naming the logger and the fix, instead of printing
    nothing at all."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO):
        self.batching = Batching(max_events=100, interval=0.0)
        self._logger = logger or logging.getLogger("events")
        self._level = level
        self._told_unseen = False

    def emit(self, batch: Sequence[AnyEvent]) -> None:
        if not self._told_unseen and not self._shown():
            self._told_unseen = True
            log.warning(
                "LoggerSink: logger %r shows no %s records (its level is %s%s), so the events are not shown;"
                " configure logging, e.g. logging.basicConfig(level=logging.%s)",
                *(self._logger.name, logging.getLevelName(self._level)),
                logging.getLevelName(self._logger.getEffectiveLevel()),
                "" if self._logger.hasHandlers() else " and no handler is configured",
                logging.getLevelName(self._level),
            )
        for event in batch:
            self._logger.log(self._level, "%s event %s", event.topic, event.json.decode())

    def _shown(self) -> bool:
        """Whether a record at the sink's level reaches a handler: without any, logging's last
        resort shows only warnings and worse."""
        if not self._logger.isEnabledFor(self._level):
            return False
        return self._logger.hasHandlers() or self._level >= logging.lastResort.level

    def close(self) -> None:
        pass


class FilterSink(ReportsFailures):
    """Passes on only the events for which `predicate(event)` is true; batches as the wrapped sink does.

    An event whose predicate raises is not passed on: it is counted in `stats.failed` and reported
    as a network sink reports an undeliverable event (to `on_error(events, error)`, else kept for
    `take_undelivered()`), and the rest of its batch goes on. `stats` and `take_undelivered()` are
    the wrapped sink's too, when it has them (a network sink), with the filter's own added.
    """

    def __init__(self, sink: Sink, predicate: Callable[[AnyEvent], bool], *, on_error: ErrorCallback | None = None):
        self._sink = sink
        self._predicate = predicate
        self.batching = sink.batching
        self._report_failures_to(on_error, "FilterSink")

    def emit(self, batch: Sequence[AnyEvent]) -> None:
        kept = [event for event in batch if self._passes(event)]
        if kept:
            self._sink.emit(kept)

    def flush(self, timeout: float) -> bool:
        flush = getattr(self._sink, "flush", None)
        return True if flush is None else bool(flush(timeout))

    def after_fork(self) -> None:
        """In a forked child: the wrapped sink's connections afresh (a Kafka producer above all), and
        counts of its own."""
        after_fork = getattr(self._sink, "after_fork", None)
        if after_fork is not None:
            after_fork()
        self._count_afresh()

    def close(self) -> None:
        self._sink.close()

    @property
    def stats(self) -> DeliveryStats:
        """The wrapped sink's counts (a network sink's) with the events whose predicate raised
        added to `failed`; they alone when the wrapped sink keeps no counts."""
        own = ReportsFailures.stats.fget(self)
        wrapped = getattr(self._sink, "stats", None)
        if not isinstance(wrapped, DeliveryStats):
            return own
        return replace(wrapped, failed=wrapped.failed + own.failed, discarded=wrapped.discarded + own.discarded)

    def take_undelivered(self) -> list[AnyEvent]:
        """The events whose predicate raised, then those the wrapped sink gave up on; removed from both."""
        taken = ReportsFailures.take_undelivered(self)
        take_wrapped = getattr(self._sink, "take_undelivered", None)
        return taken + list(take_wrapped()) if take_wrapped is not None else taken

    def _passes(self, event: AnyEvent) -> bool:
        try:
            return bool(self._predicate(event))
        except Exception as error:
            reason = f"the predicate raised {type(error).__name__}: {error}"
            self._give_up([event], DeliveryError(reason, retryable=False))
            return False


class MemorySink:
    """Keeps every batch in memory, in order; for tests and for examples."""

    def __init__(self, batching: Batching | None = None):
        self.batching = batching or Batching()
        self.batches: list[list[AnyEvent]] = []
        self.close_calls = 0
        self._lock = threading.Lock()

    @property
    def events(self) -> list[AnyEvent]:
        with self._lock:
            return [event for batch in self.batches for event in batch]

    @property
    def closed(self) -> bool:
        return self.close_calls > 0

    def emit(self, batch: Sequence[AnyEvent]) -> None:
        with self._lock:
            self.batches.append(list(batch))

    def close(self) -> None:
        self.close_calls += 1
