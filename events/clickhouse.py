"""ClickHouseSink: batched inserts into the landing tables over ClickHouse's HTTP interface.

Each topic has its landing table `<database>.<topic>_queue`. Typed topics are inserted with
`FORMAT JSONEachRow` (one column per field); telemetry, whose attributes are free, with
`FORMAT JSONAsString` (the whole event in one String column), since JSONEachRow would drop
fields the table does not name.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlencode

import urllib3

from events.contract import TELEMETRY_TOPIC
from events.event import AnyEvent
from events.retry import backoff_delay, is_retryable
from events.sinks import Batching, DeliveryError, DeliveryStats, ErrorCallback, FailedEvents, _Counters

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE_IN_BODY = re.compile(r"Code: (\d+)\.")


class ClickHouseSink:
    """Inserts events into `<database>.<topic>_queue` over HTTP.

    Batches go out at `batch_size` events, `batch_bytes` of JSON or `interval` seconds, whichever
    comes first (the client does the batching; a direct `emit` of a larger batch is split).
    Transient errors (no connection, timeouts, 5xx without a code, ClickHouse's retryable codes)
    are retried `max_retries` times with exponential backoff from `backoff` up to `max_backoff`
    seconds. Permanent rejections are not retried. Either way the events given up on go to
    `on_error(events, error)` or, without it, are kept for `take_undelivered()`; they are counted
    in `stats`. Every request has a `timeout` in seconds.
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
    ):
        if not _IDENTIFIER.match(database):
            raise ValueError(f"database must be a plain identifier, got {database!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries}")
        self.batching = Batching(max_events=batch_size, max_bytes=batch_bytes, interval=interval)
        self.database = database
        self._url = url.rstrip("/") + "/"
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._closing = threading.Event()
        # Waiting on the closing flag lets close() cut a backoff short instead of outwaiting it.
        self._sleep = sleep or self._closing.wait
        self._http = urllib3.PoolManager(
            retries=False,  # retries are decided here, by is_retryable
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
            headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": password},
        )
        self._failures = FailedEvents(on_error, "ClickHouseSink")
        self._counters = _Counters()

    @property
    def stats(self) -> DeliveryStats:
        return self._counters.snapshot()

    def take_undelivered(self) -> list[AnyEvent]:
        """Events given up on while no `on_error` callback took them; removed from the sink."""
        return self._failures.take()

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
            self._http.clear()

    # -- one insert ------------------------------------------------------------------------------
    def _insert(self, topic: str, events: list[AnyEvent]) -> None:
        if self._closing.is_set():
            self._give_up(events, DeliveryError("the sink is closed", retryable=False), "failed")
            return
        # Telemetry lands whole in the `message` column (the table's other columns are Kafka's position).
        target = (
            f"{topic}_queue (message) FORMAT JSONAsString"
            if topic == TELEMETRY_TOPIC
            else f"{topic}_queue FORMAT JSONEachRow"
        )
        query = {
            "query": f"INSERT INTO {self.database}.{target}",
            "date_time_input_format": "best_effort",  # accept `Z` and offsets in DateTime64 columns
            "input_format_skip_unknown_fields": "1",  # context attributes the table does not name
        }
        url = self._url + "?" + urlencode(query)
        body = b"".join(event.json + b"\n" for event in events)
        attempt = 0
        while True:
            error = self._post(url, body)
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

    def _post(self, url: str, body: bytes) -> DeliveryError | None:
        """One attempt; None on success, else the error with its retry decision."""
        try:
            response = self._http.request("POST", url, body=body)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return DeliveryError(f"no answer from ClickHouse: {error}", retryable=is_retryable(None, None))
        if response.status == 200:
            return None
        text = response.data.decode("utf-8", "replace").strip()
        code = _exception_code(response.headers.get("X-ClickHouse-Exception-Code"), text)
        return DeliveryError(
            f"HTTP {response.status}: {text[:500]}",
            retryable=is_retryable(response.status, code),
            status=response.status,
            code=code,
        )

    def _give_up(self, events: list[AnyEvent], error: DeliveryError, outcome: str) -> None:
        self._counters.add(**{outcome: len(events)})
        self._failures.report(events, error)


def _exception_code(header: str | None, body: str) -> int | None:
    if header and header.strip().isdigit():
        return int(header)
    match = _CODE_IN_BODY.search(body)
    return int(match.group(1)) if match else None


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
