"""ClickHouseSink: batched inserts into the landing tables over ClickHouse's HTTP interface.

Each topic has its landing table `<database>.<topic>_queue`. Typed topics are inserted with
`FORMAT JSONEachRow` (one column per field); telemetry, whose attributes are free, with
`FORMAT JSONAsString` (the whole event in one String column), since JSONEachRow would drop
fields the table does not name.

Every insert runs the chain of materialized views behind the landing table once, at about the
same cost for ten events as for ten thousand, so by default the sink asks for ClickHouse's
asynchronous inserts (`async_insert=1`, `wait_for_async_insert=1`): the server joins the small
inserts of many producers into one and answers each after the joint insert, with its outcome.
A ClickHouse server refuses every insert of a joint one when the views refuse one row of it, so
a batch refused that way is sent once more on its own, and that answer is its verdict.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import urllib3

from core.clickhouse.http import HttpClient, NoAnswer, ServerError
from core.errors import Code
from core.names import queue_table
from events.contract import TELEMETRY_TOPIC
from events.event import AnyEvent
from events.retry import backoff_delay, is_retryable
from events.sinks import (
    MAX_KEPT,
    Batching,
    DeliveryError,
    ErrorCallback,
    ReportsFailures,
    check_count,
    check_seconds,
)

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The longest a request, or a wait between two attempts, may take (seconds): past it a socket's timeout
# or a wait overflows.
LONGEST_WAIT = 86_400.0

# What asks the server to join the sink's inserts with other senders' and answer after the joint insert.
ASYNC_INSERT = {"async_insert": "1", "wait_for_async_insert": "1"}


# Refusals of the request itself, which no row of a joint insert can have caused: the batch's own
# insert would be refused the same way, so it is not sent again alone.
NOT_FROM_A_ROW = frozenset(
    {
        Code.UNKNOWN_TABLE,
        Code.UNKNOWN_DATABASE,
        Code.UNKNOWN_SETTING,
        Code.READONLY,
        Code.SYNTAX_ERROR,
        Code.UNKNOWN_USER,
        Code.WRONG_PASSWORD,
        Code.REQUIRED_PASSWORD,
        Code.AUTHENTICATION_FAILED,
        Code.ACCESS_DENIED,
        Code.DATABASE_ACCESS_DENIED,
    }
)


def resend_alone(error: DeliveryError, joined: bool) -> bool:
    """Whether a refused batch goes once more on its own: only a refusal of an insert the server
    may have joined with others' (whose bad rows it then shares), and not one of the request itself
    (a wrong password, an unknown table); a retryable error is retried as is."""
    return joined and not error.retryable and error.code not in NOT_FROM_A_ROW and error.status not in (401, 403)


class ClickHouseSink(ReportsFailures):
    """Inserts events into `<database>.<topic>_queue` over HTTP.

    Batches go out at `batch_size` events, `batch_bytes` of JSON or `interval` seconds, whichever
    comes first (the client does the batching; a direct `emit` of a larger batch is split).
    Transient errors (no connection, timeouts, 5xx without a code, ClickHouse's retryable codes)
    are retried `max_retries` times with exponential backoff from `backoff` up to `max_backoff`
    seconds. Permanent rejections are not retried. Either way the events given up on go to
    `on_error(events, error)` or, without it, are kept for `take_undelivered()` (the newest
    `max_undelivered`; older ones are discarded and counted in `stats.discarded`); they are counted
    in `stats`. Every request has a `timeout` in seconds.

    `async_insert` (on by default) lets the server join the sink's inserts with other producers'
    (module docstring); off, each batch is an insert of its own. `settings` are more ClickHouse
    settings for every insert (e.g. `async_insert_busy_timeout_max_ms`).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8123",
        database: str = "analytics",
        *,
        user: str = "default",
        password: str = "",
        batch_size: int = 10_000,
        batch_bytes: int = 8 << 20,
        interval: float = 1.0,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        on_error: ErrorCallback | None = None,
        sleep: Callable[[float], object] | None = None,
        async_insert: bool = True,
        settings: Mapping[str, str | int | float] | None = None,
        max_undelivered: int = MAX_KEPT,
    ):
        if not _IDENTIFIER.match(database):
            raise ValueError(f"database must be a plain identifier, got {database!r}")
        check_count("max_retries", max_retries)
        check_seconds("timeout", timeout, above_zero=True, at_most=LONGEST_WAIT)
        check_seconds("backoff", backoff, at_most=LONGEST_WAIT)
        check_seconds("max_backoff", max_backoff, at_most=LONGEST_WAIT)
        self.batching = Batching(max_events=batch_size, max_bytes=batch_bytes, interval=interval)
        self.database = database
        self._settings = {
            name: str(int(value)) if isinstance(value, bool) else str(value) for name, value in (settings or {}).items()
        }
        for name in self._settings:
            if not _IDENTIFIER.match(name) or name == "query":
                raise ValueError(f"settings must name ClickHouse settings, got {name!r}")
            if name in ASYNC_INSERT:
                raise ValueError(f"{name} is the sink's own: pass async_insert=True or False instead")
        self._async_insert = async_insert
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._closing = threading.Event()
        # Waiting on the closing flag lets close() cut a backoff short instead of outwaiting it.
        self._sleep = sleep or self._closing.wait
        # No retries of its own: they are decided here, by is_retryable.
        request_timeout = urllib3.Timeout(connect=min(timeout, 5.0), read=timeout)
        self._new_http = lambda: HttpClient(url, user, password, timeout=request_timeout)
        self._http = self._new_http()
        self._report_failures_to(on_error, "ClickHouseSink", max_undelivered)

    def after_fork(self) -> None:
        """In a forked child: connections of its own (sharing the parent's would mix their requests)."""
        self._http = self._new_http()
        self._count_afresh()

    def emit(self, batch: Sequence[AnyEvent]) -> None:
        by_topic: dict[str, list[AnyEvent]] = {}
        for event in batch:
            by_topic.setdefault(event.topic, []).append(event)
        for topic, events in by_topic.items():
            for chunk in _chunks(events, self.batching):
                self._insert(topic, chunk)

    def close(self) -> None:
        if not self._closing.is_set():
            self._closing.set()
            self._http.close()

    # -- one insert ------------------------------------------------------------------------------
    def _insert(self, topic: str, events: list[AnyEvent]) -> None:
        if self._closing.is_set():
            self._give_up(events, DeliveryError("the sink is closed", retryable=False), "failed")
            return
        # Telemetry lands whole in the `message` column (the table's other columns are Kafka's position).
        target = (
            f"{queue_table(topic)} (message) FORMAT JSONAsString"
            if topic == TELEMETRY_TOPIC
            else f"{queue_table(topic)} FORMAT JSONEachRow"
        )
        own = {
            "query": f"INSERT INTO {self.database}.{target}",
            "date_time_input_format": "best_effort",  # accept `Z` and offsets in DateTime64 columns
            "input_format_skip_unknown_fields": "1",  # context attributes the table does not name
            **self._settings,
        }
        alone = {**own, "async_insert": "0"}  # on its own even where the server's profile joins inserts
        query = {**own, **ASYNC_INSERT} if self._async_insert else alone
        body = b"".join(event.json + b"\n" for event in events)
        attempt = 0
        while True:
            error = self._post(query, body)
            if error is not None and resend_alone(error, self._async_insert):
                self._counters.add(resent_alone=1)
                error = self._post(alone, body)
            if error is None:
                self._counters.add(delivered=len(events))
                return
            if not error.retryable:
                self._give_up(events, error, "rejected")
                return
            if attempt >= self._max_retries or self._closing.is_set():
                self._give_up(events, error, "failed")
                return
            delay = backoff_delay(attempt, self._backoff, self._max_backoff)
            log.warning(
                "insert of %d %s events failed (%s); retry %d in %.2fs", len(events), topic, error, attempt + 1, delay
            )
            self._counters.add(retries=1)
            self._sleep(delay)
            attempt += 1

    def _post(self, query: dict[str, str], body: bytes) -> DeliveryError | None:
        """One attempt; None on success, else the error with its retry decision."""
        try:
            self._http.post(query, body)
        except NoAnswer as error:
            return DeliveryError(f"no answer from ClickHouse: {error}", retryable=is_retryable(None, None))
        except ServerError as error:
            return DeliveryError(
                f"HTTP {error.status}: {error.text.strip()[:500]}",
                retryable=is_retryable(error.status, error.code),
                status=error.status,
                code=error.code,
            )
        return None


def _chunks(events: list[AnyEvent], batching: Batching) -> Iterator[list[AnyEvent]]:
    """Split into pieces within the batch limits (a single oversized event goes alone)."""
    chunk: list[AnyEvent] = []
    size = 0
    for event in events:
        length = len(event.json) + 1
        if chunk and (len(chunk) >= batching.max_events or size + length > batching.max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(event)
        size += length
    if chunk:
        yield chunk
