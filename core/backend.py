"""The query-backend interface: what the gRPC service knows of where its queries run.

A backend takes one SELECT with server-side parameters (``{name:Type}``) and the values
separately, so no value is ever part of the SQL text, and returns the rows as lists of JSON
values (JSONCompactEachRow). The wiring picks one and hands it to the service: HttpBackend
(core.clickhouse.backend: any ClickHouse over HTTP) or ChdbBackend (embedded.backend: chDB in
the process of `analytics up`). Both keep one connection per worker thread (PerThread): a chDB
connection shared by threads serialises and, with query parameters, can return another
thread's answer.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

FORMAT = "JSONCompactEachRow"
SHORTEST_LIMIT = 0.001  # max_execution_time 0 means "no limit"; never send less than a millisecond
# Stored strings may hold bytes that are not UTF-8 (ClickHouse takes them in); JSON and protobuf
# need UTF-8, so such bytes come out as U+FFFD instead of failing the answer.
VALID_UTF8 = "output_format_json_validate_utf8"

Value = str | int | dt.date | list | tuple


class QueryFailed(Exception):
    """ClickHouse could not answer. The message is for the server's log, never for clients."""


class QueryTimedOut(QueryFailed):
    """The query ran out of the time it was given."""


class StoreUnreachable(QueryFailed):
    """ClickHouse could not be reached or dropped the connection: calling again later may work."""


class StoreBusy(QueryFailed):
    """ClickHouse refused the query as one too many at once (TOO_MANY_SIMULTANEOUS_QUERIES)."""


class WriteLog:
    """What a backend's ClickHouse has finished writing, counted as each statement ends.

    ``inserts`` counts INSERTs: the materialized views announce the keys they touched (the
    serving model reads them from workflow_changes). ``changes`` counts every other statement
    that may change data (ALTER, TRUNCATE, DROP, EXCHANGE, OPTIMIZE...), which nothing
    announces. A statement is counted before its client gets the answer, so a reader that
    sees a count knows every write that had returned by then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inserts = 0
        self._changes = 0

    def inserted(self) -> None:
        with self._lock:
            self._inserts += 1

    def changed(self) -> None:
        with self._lock:
            self._changes += 1

    def counts(self) -> tuple[int, int]:
        """(inserts, changes) finished so far."""
        with self._lock:
            return self._inserts, self._changes


class QueryBackend(Protocol):
    description: str
    # Every write to the backend's ClickHouse, when the backend is the only way in (the chDB
    # of `analytics up`, whose front counts them); None for a ClickHouse others write to.
    writes: WriteLog | None

    def rows(self, sql: str, params: dict[str, Value], timeout: float) -> list[list]:
        """Run one SELECT with its parameters within ``timeout`` seconds."""
        ...

    def reachable(self, timeout: float) -> None:
        """Return if ClickHouse can be reached; StoreUnreachable if not, QueryTimedOut if it is slow to say."""
        ...

    def close(self) -> None: ...


def _escaped(text: str) -> str:
    return (
        text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r").replace("\0", "\\0")
    )


def _literal(value: Value) -> str:
    """A value inside an Array or Tuple parameter, in the quoted form ClickHouse reads there."""
    if isinstance(value, list):
        return "[" + ",".join(_literal(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ",".join(_literal(item) for item in value) + ")"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    return "'" + _escaped(value).replace("'", "\\'") + "'"


def escape_value(value: Value) -> str:
    """A parameter value in the text form ClickHouse parses it from (its escaped format).

    A list is an Array value and a tuple a Tuple value, written as their literals.
    """
    if isinstance(value, list | tuple):
        return _literal(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    return _escaped(value)


def parse_rows(body: bytes) -> list[list]:
    """JSONCompactEachRow's lines, parsed as one JSON array (several times faster than line by line)."""
    body = body.strip()
    if not body:
        return []
    # A JSON line holds no raw line break (strings escape theirs), so each one separates two rows.
    return json.loads(b"[" + body.replace(b"\n", b",") + b"]")


T = TypeVar("T")


class PerThread(Generic[T]):
    """One resource per thread, made on first use; all of them closed together."""

    def __init__(self, make: Callable[[], T], dispose: Callable[[T], None]):
        self._make = make
        self._dispose = dispose
        self._local = threading.local()
        self._all: list[T] = []
        self._guard = threading.Lock()

    def get(self) -> T:
        resource = getattr(self._local, "resource", None)
        if resource is None:
            resource = self._make()
            self._local.resource = resource
            with self._guard:
                self._all.append(resource)
        return resource

    def close(self) -> None:
        with self._guard:
            resources, self._all = self._all, []
        self._local = threading.local()  # a thread that asks again gets a new one
        for resource in resources:
            self._dispose(resource)
