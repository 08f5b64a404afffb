"""ClickHouse's asynchronous inserts (`async_insert=1`) for the embedded server.

chDB accepts the setting but inserts at once: every small insert would pay the whole chain of
materialized views on its own (about 0.2 CPU-seconds for a job event's chain, whatever the number
of rows). So the front does what a ClickHouse server's asynchronous insert queue does: small
inserts into the same table, with the same statement, format and settings, that arrive within
the busy timeout are run as one insert, up to `async_insert_max_data_size` bytes (default 10
MiB). The timeout adapts as ClickHouse's does by default (`async_insert_use_adaptive_busy_timeout`,
since 24.2): a key's first batch waits `async_insert_busy_timeout_min_ms` (50), inserts that
follow each other within it stretch the timeout by `..._increase_rate` up to
`async_insert_busy_timeout_max_ms` (200; `async_insert_busy_timeout_ms` is its alias), sparse ones
shrink it back, and an insert that comes alone after a quiet spell is inserted at once; with the
adaptive timeout off, every batch waits the maximum. Batches of one key are inserted one after
another, so duplicates sent at the same moment meet the first-seen gate in order; a batch whose
time is up while the key's previous insert runs goes on taking rows until its turn comes, so
under load the inserts grow instead of queueing up.

`wait_for_async_insert=1` (the default) answers each sender after the combined insert, with its
outcome; `0` answers at once and only logs a failure. Should the combined insert fail, each
sender's rows are inserted again on their own, so a bad batch is refused with its own error and
its neighbours' rows count: the same verdicts as without coalescing. A failing insert stores
nothing (the contract's rules and the parser stop it before any view writes), and the first-seen
gate drops whatever a retried insert brings twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.errors import Code
from embedded.errors import ClickHouseError
from embedded.request import RequestSpec

log = logging.getLogger(__name__)

MAX_PACES = 1024  # keys whose recent inserts the adaptive busy timeout remembers

# Input formats whose bodies can be joined: rows one after another ("\n" between text bodies).
_TEXT_ROWS = {
    "jsoneachrow",
    "jsonlines",
    "ndjson",
    "jsonasstring",
    "jsoncompacteachrow",
    "jsonstringseachrow",
    "tabseparated",
    "tsv",
    "tabseparatedraw",
    "tsvraw",
    "csv",
    "lineasstring",
}
_BINARY_ROWS = {"rowbinary"}
_BUSY_TIMEOUT = (
    "async_insert_use_adaptive_busy_timeout",
    "async_insert_busy_timeout_ms",
    "async_insert_busy_timeout_max_ms",
    "async_insert_busy_timeout_min_ms",
    "async_insert_busy_timeout_increase_rate",
    "async_insert_busy_timeout_decrease_rate",
)
_SETTINGS_OF_THE_QUEUE = ("async_insert", "wait_for_async_insert", *_BUSY_TIMEOUT)
_TRUE = {"1", "true"}
_BOOLS = _TRUE | {"0", "false"}  # what ClickHouse parses as a bool setting, in any case
_UNSIGNED = (
    "async_insert_busy_timeout_ms",
    "async_insert_busy_timeout_max_ms",
    "async_insert_busy_timeout_min_ms",
    "async_insert_max_data_size",
)
_RATES = ("async_insert_busy_timeout_increase_rate", "async_insert_busy_timeout_decrease_rate")


def check_settings(settings: dict[str, str]) -> None:
    """Refuse the queue's own settings with a value ClickHouse would not parse, as it would.

    They are read here, before any SET reaches chDB: a bad one must fail the request, not turn
    into a default or into a batch that fails after an early answer (wait_for_async_insert=0).
    """
    for name in ("async_insert", "wait_for_async_insert", "async_insert_use_adaptive_busy_timeout"):
        value = settings.get(name)
        if value is not None and value.lower() not in _BOOLS:
            raise ClickHouseError.of(Code.CANNOT_PARSE_BOOL, f"Cannot parse bool from string '{value}' ({name})")
    for name in _UNSIGNED:
        value = settings.get(name)
        if value is None or value.isascii() and value.isdigit():
            continue
        if value.startswith("-"):
            raise ClickHouseError.of(Code.CANNOT_PARSE_NUMBER, f"Unsigned type must not contain '-' symbol ({name})")
        raise ClickHouseError.of(
            Code.CANNOT_PARSE_INPUT_ASSERTION_FAILED, f"Cannot parse input: expected 'eof' before: '{value}' ({name})"
        )
    for name in _RATES:
        value = settings.get(name)
        if value is None:
            continue
        try:
            rate = float(value)
        except ValueError:
            raise ClickHouseError.of(
                Code.CANNOT_PARSE_NUMBER, f"Cannot read floating point value here: {value} ({name})"
            ) from None
        if not rate > 0:
            raise ClickHouseError.of(Code.INVALID_SETTING_VALUE, f"Setting '{name}' must be greater than zero")
    if BusyTimeout.of(settings).max_ms == 0:
        raise ClickHouseError.of(Code.INVALID_SETTING_VALUE, "Setting 'async_insert_busy_timeout_max_ms' can't be zero")


def wanted(settings: dict[str, str], fmt: str, default: bool = False) -> bool:
    """Whether the request asks for an asynchronous insert (`default` when it does not say) in a
    format whose bodies can be joined."""
    asked = settings.get("async_insert", "1" if default else "0").lower() in _TRUE
    return asked and fmt.lower() in _TEXT_ROWS | _BINARY_ROWS


def batch_request(sender: RequestSpec) -> RequestSpec:
    """The request a batch is inserted as: its first sender's, but a query of its own. The sender
    was answered long before (wait_for_async_insert=0), and may have reused its query id, its
    session or gone away since: none of that may belong to the batch."""
    return dataclasses.replace(
        sender,
        query_id=f"async-insert-{uuid.uuid4()}",
        session_id=None,
        kill_marker=None,
        client_gone=None,
        cancel_on_close=False,
        mark_every_statement=False,
    )


def waits(settings: dict[str, str]) -> bool:
    return settings.get("wait_for_async_insert", "1").lower() in _TRUE


@dataclass
class Batch:
    key: tuple
    separator: bytes
    bodies: list[bytes] = field(default_factory=list)
    outcomes: list[asyncio.Future] = field(default_factory=list)
    size: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Turn:
    """Whose turn it is to insert for one key, and how many batches wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    batches: int = 0


# Runs one insert of the given rows on the leader's connection; returns chDB's result.
Run = Callable[[bytes], Awaitable[object]]


class AsyncInsertQueue:
    """Open batches by (user, database, statement, format, settings)."""

    def __init__(self) -> None:
        self.open: dict[tuple, Batch] = {}
        # One insert at a time per key: the first-seen gate is exact at once only between inserts
        # that do not overlap (README, "Metrics and exactness"), and a sender's duplicates sent
        # concurrently would otherwise race in two batches.
        self.turns: dict[tuple, Turn] = {}
        self.paces: dict[tuple, Pace] = {}  # what the adaptive timeout follows, per key
        self.leading: set[asyncio.Future] = set()

    def busy_timeout(self, key: tuple, settings: dict[str, str], now: float) -> tuple[float, bool]:
        """Seconds a batch of the key opened now waits, and whether this insert goes in at once."""
        if key not in self.paces and len(self.paces) >= MAX_PACES:
            # Keys are statements and settings, few in practice; forget the quietest half if not.
            for old, _ in sorted(self.paces.items(), key=lambda item: item[1].last_push or 0)[: MAX_PACES // 2]:
                del self.paces[old]
        return busy_timeout(self.paces.setdefault(key, Pace()), BusyTimeout.of(settings), now)

    def join(
        self, key: tuple, fmt: str, body: bytes, max_size: int, at_once: bool = False
    ) -> tuple[Batch, asyncio.Future, bool]:
        """Add a body to the key's open batch (opening one: then the caller leads it); `at_once`
        ends the batch's wait, as reaching `max_size` bytes does."""
        batch = self.open.get(key)
        leader = batch is None
        if leader:
            separator = b"" if fmt.lower() in _BINARY_ROWS else b"\n"
            batch = self.open[key] = Batch(key, separator)
        if batch.separator and body and not body.endswith(b"\n"):
            body += b"\n"
        outcome = asyncio.get_running_loop().create_future()
        batch.bodies.append(body)
        batch.outcomes.append(outcome)
        batch.size += len(body)
        if batch.size >= max_size or at_once:
            self._close(batch)
            batch.full.set()
        return batch, outcome, leader

    def _close(self, batch: Batch) -> None:
        if self.open.get(batch.key) is batch:
            del self.open[batch.key]

    async def lead(self, batch: Batch, timeout_s: float, run: Run) -> None:
        """Wait for the batch to fill or time out, insert it, and settle every sender's outcome."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(batch.full.wait(), timeout_s)
        turn = self.turns.setdefault(batch.key, Turn())
        turn.batches += 1
        try:
            async with turn.lock:
                # Open until now: while the key's previous insert ran, what arrived joined this
                # batch instead of a next one, which would pay the chain of views again.
                self._close(batch)
                if pace := self.paces.get(batch.key):
                    pace.flushes = (pace.flushes[1], time.monotonic())
                await self._insert(batch, run)
        finally:
            turn.batches -= 1
            if not turn.batches:
                del self.turns[batch.key]

    async def _insert(self, batch: Batch, run: Run) -> None:
        try:
            await self._insert_bodies(batch, run)
        except BaseException as error:
            for outcome in batch.outcomes:  # the senders not answered yet: none may wait for ever
                _settle(outcome, error=error)
            raise

    async def _insert_bodies(self, batch: Batch, run: Run) -> None:
        try:
            result = await run(batch.separator.join(batch.bodies) if len(batch.bodies) > 1 else batch.bodies[0])
        except ClickHouseError as error:
            if len(batch.bodies) == 1:
                _settle(batch.outcomes[0], error=error)
                return
            log.info("a combined insert of %d bodies failed (%s); inserting each on its own", len(batch.bodies), error)
            for body, outcome in zip(batch.bodies, batch.outcomes, strict=True):
                try:
                    _settle(outcome, result=await run(body))
                except ClickHouseError as alone:
                    _settle(outcome, error=alone)
            return
        for outcome in batch.outcomes:
            _settle(outcome, result=result)

    def track(self, leading: asyncio.Future) -> None:
        """A task leading a batch (``lead``), kept until it ends: `drain` waits for it."""
        self.leading.add(leading)
        leading.add_done_callback(self.leading.discard)

    async def drain(self) -> None:
        """Insert every batch now, open ones without waiting out their busy timeout: the server is
        stopping, and a sender answered at once (wait_for_async_insert=0) has been told its rows
        are in, as a ClickHouse server flushes its queue when it stops."""
        for batch in list(self.open.values()):
            self._close(batch)
            batch.full.set()
        await asyncio.gather(*list(self.leading), return_exceptions=True)


def _settle(outcome: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if outcome.done():
        return
    if error is not None:
        outcome.set_exception(error)
        outcome.exception()  # a sender that stopped waiting leaves it unread: no warning about that
    else:
        outcome.set_result(result)


def queue_key(user: str, database: str | None, statement: bytes, settings: dict[str, str]) -> tuple:
    others = tuple(sorted((n, v) for n, v in settings.items() if n not in _SETTINGS_OF_THE_QUEUE))
    return (user, database, statement, others)


@dataclass(frozen=True)
class BusyTimeout:
    """The busy timeout's settings (checked by check_settings)."""

    adaptive: bool = True
    max_ms: int = 200
    min_ms: int = 50
    increase_rate: float = 0.2
    decrease_rate: float = 0.2

    @classmethod
    def of(cls, settings: dict[str, str]) -> BusyTimeout:
        maximum = settings.get("async_insert_busy_timeout_max_ms", settings.get("async_insert_busy_timeout_ms", "200"))
        return cls(
            adaptive=settings.get("async_insert_use_adaptive_busy_timeout", "1").lower() in _TRUE,
            max_ms=int(maximum),
            min_ms=int(settings.get("async_insert_busy_timeout_min_ms", "50")),
            increase_rate=float(settings.get("async_insert_busy_timeout_increase_rate", "0.2")),
            decrease_rate=float(settings.get("async_insert_busy_timeout_decrease_rate", "0.2")),
        )


@dataclass
class Pace:
    """One key's recent inserts, which the adaptive timeout follows (times in seconds, monotonic)."""

    timeout_ms: int | None = None
    last_push: float | None = None
    flushes: tuple[float | None, float | None] = (None, None)  # the last two inserts' starts


def busy_timeout(pace: Pace, limits: BusyTimeout, now: float) -> tuple[float, bool]:
    """Seconds a batch opened now waits for more rows, and whether the rows go in at once; updates
    the pace. ClickHouse's AsynchronousInsertQueue::getBusyWaitTimeoutMs and its flush of an insert
    that comes after a quiet spell, step for step."""
    if not limits.adaptive:
        pace.last_push = now
        return limits.max_ms / 1000, False
    low = min(max(limits.min_ms, 1), limits.max_ms)

    def bounded(ms: int) -> int:
        return min(max(ms, low), limits.max_ms)

    current = low if pace.timeout_ms is None else pace.timeout_ms
    first, second = pace.flushes
    if pace.last_push is None or first is None or second is None:
        timeout = bounded(current)
        at_once = False
    else:
        decreased = min(int(current / (1 + limits.decrease_rate)), current - 1)
        if pace.last_push + low / 1000 > now:  # frequent inserts: wait longer for more
            timeout = bounded(max(int(current * (1 + limits.increase_rate)), current + 1))
        elif pace.last_push + decreased / 1000 < now and first + decreased / 1000 < second:
            timeout = bounded(decreased)
        else:
            timeout = bounded(current)
        quiet = limits.max_ms / 1000
        at_once = pace.last_push + quiet < now and first + quiet < second
    pace.timeout_ms, pace.last_push = timeout, now
    return timeout / 1000, at_once


def max_data_size(settings: dict[str, str]) -> int:
    """Bytes at which a batch is inserted without waiting longer (checked by check_settings)."""
    return int(settings.get("async_insert_max_data_size", str(10 << 20)))
