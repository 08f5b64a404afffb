"""ClickHouse's asynchronous inserts (`async_insert=1`) for the embedded server.

chDB accepts the setting but inserts at once: every small insert would pay the whole chain of
materialized views on its own (about 0.2 CPU-seconds for a job event's chain, whatever the number
of rows). So the front does what a ClickHouse server's asynchronous insert queue does: small
inserts into the same table, with the same statement, format and settings, that arrive within
`async_insert_busy_timeout_ms` (default 200) are run as one insert, up to
`async_insert_max_data_size` bytes (default 10 MiB). Batches of one key are inserted one after
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
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.errors import Code
from embedded.errors import ClickHouseError

log = logging.getLogger(__name__)

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
_SETTINGS_OF_THE_QUEUE = ("async_insert", "wait_for_async_insert", "async_insert_busy_timeout_ms")
_TRUE = {"1", "true"}
_BOOLS = _TRUE | {"0", "false"}  # what ClickHouse parses as a bool setting, in any case
_UNSIGNED = ("async_insert_busy_timeout_ms", "async_insert_max_data_size")


def check_settings(settings: dict[str, str]) -> None:
    """Refuse the queue's own settings with a value ClickHouse would not parse, as it would.

    They are read here, before any SET reaches chDB: a bad one must fail the request, not turn
    into a default or into a batch that fails after an early answer (wait_for_async_insert=0).
    """
    for name in ("async_insert", "wait_for_async_insert"):
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


def wanted(settings: dict[str, str], fmt: str) -> bool:
    """Whether the request asks for an asynchronous insert in a format whose bodies can be joined."""
    return settings.get("async_insert", "0").lower() in _TRUE and fmt.lower() in _TEXT_ROWS | _BINARY_ROWS


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

    def join(self, key: tuple, fmt: str, body: bytes, max_size: int) -> tuple[Batch, asyncio.Future, bool]:
        """Add a body to the key's open batch (opening one: then the caller leads it)."""
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
        if batch.size >= max_size:
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
                await self._insert(batch, run)
        finally:
            turn.batches -= 1
            if not turn.batches:
                del self.turns[batch.key]

    async def _insert(self, batch: Batch, run: Run) -> None:
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
        except BaseException as error:
            for outcome in batch.outcomes:
                _settle(outcome, error=error)
            raise
        for outcome in batch.outcomes:
            _settle(outcome, result=result)


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


def busy_timeout_s(settings: dict[str, str]) -> float:
    """Seconds a batch waits for more rows (checked by check_settings)."""
    return int(settings.get("async_insert_busy_timeout_ms", "200")) / 1000


def max_data_size(settings: dict[str, str]) -> int:
    """Bytes at which a batch is inserted without waiting longer (checked by check_settings)."""
    return int(settings.get("async_insert_max_data_size", str(10 << 20)))
