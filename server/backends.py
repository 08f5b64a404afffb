"""Where the gRPC service's queries run: chDB in this process, or a ClickHouse server over HTTP.

Both take SQL with server-side parameters (``{name:Type}``) and the values separately, so no
value is ever part of the SQL text. Both keep one connection per worker thread: a chDB
connection shared by threads serialises and, with query parameters, can return another
thread's answer. Rows come back as lists of JSON values (JSONCompactEachRow).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar
from urllib.parse import urlencode, urlsplit

import urllib3

from embedded.engine import Connection, Engine
from embedded.errors import ClickHouseError

log = logging.getLogger(__name__)

FORMAT = "JSONCompactEachRow"
TIMEOUT_EXCEEDED = 159  # ClickHouse's code when max_execution_time runs out
SHORTEST_LIMIT = 0.001  # max_execution_time 0 means "no limit"; never send less than a millisecond
# Stored strings may hold bytes that are not UTF-8 (ClickHouse takes them in); JSON and protobuf
# need UTF-8, so such bytes come out as U+FFFD instead of failing the answer.
VALID_UTF8 = "output_format_json_validate_utf8"

Value = str | int | dt.date | list | tuple


class QueryFailed(Exception):
    """ClickHouse could not answer. The message is for the server's log, never for clients."""


class QueryTimedOut(QueryFailed):
    """The query ran out of the time it was given."""


class QueryBackend(Protocol):
    description: str

    def rows(self, sql: str, params: dict[str, Value], timeout: float) -> list[list]:
        """Run one SELECT with its parameters within ``timeout`` seconds."""
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
        for resource in resources:
            self._dispose(resource)


class ChdbBackend:
    """chDB of this process (inside `analytics up`), through the engine's connections."""

    def __init__(self, engine: Engine):
        self.description = f"in-process chDB at {engine.data_dir}"
        # Connections of its own, not the HTTP front's pooled ones, which may carry a client's SETs.
        self._connections: PerThread[Connection] = PerThread(engine.new_connection, Connection.close)

    def rows(self, sql: str, params: dict[str, Value], timeout: float) -> list[list]:
        # SET would change the connection for later queries; a SETTINGS clause applies to this one only.
        limited = f"{sql}\nSETTINGS max_execution_time = {max(timeout, SHORTEST_LIMIT):.3f}, {VALID_UTF8} = 1"
        values = {name: escape_value(value) for name, value in params.items()}
        try:
            result = self._connections.get().query(limited, FORMAT, values)
        except ClickHouseError as error:
            if error.code == TIMEOUT_EXCEEDED:
                raise QueryTimedOut(error.message) from None
            raise QueryFailed(f"{error.name or error.code}: {error.message}") from None
        return parse_rows(result.bytes())

    def close(self) -> None:
        self._connections.close()


class HttpBackend:
    """A ClickHouse server (or `analytics clickhouse`) over its HTTP interface."""

    def __init__(self, url: str, user: str = "default", password: str = "", secure: bool = False):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the ClickHouse URL {url!r} is not http(s)://HOST[:PORT]")
        self._secure = parts.scheme == "https" or secure
        self._host = parts.hostname
        self._port = parts.port or (8443 if self._secure else 8123)
        scheme = "https" if self._secure else "http"
        self.description = f"ClickHouse at {scheme}://{self._host}:{self._port}"
        self._headers = {"X-ClickHouse-User": parts.username or user}
        if parts.password or password:
            self._headers["X-ClickHouse-Key"] = parts.password or password
        self._pools: PerThread[urllib3.HTTPConnectionPool] = PerThread(self._new_pool, lambda pool: pool.close())

    def _new_pool(self) -> urllib3.HTTPConnectionPool:
        pool_class = urllib3.HTTPSConnectionPool if self._secure else urllib3.HTTPConnectionPool
        return pool_class(self._host, self._port, maxsize=1, block=False, retries=False)

    def rows(self, sql: str, params: dict[str, Value], timeout: float) -> list[list]:
        limit = max(timeout, SHORTEST_LIMIT)
        fields = {"default_format": FORMAT, "max_execution_time": f"{limit:.3f}", VALID_UTF8: "1"}
        fields.update({f"param_{name}": escape_value(value) for name, value in params.items()})
        # A pooled connection the server has closed meanwhile fails at once; a SELECT is safe to send again.
        for attempt in (1, 2):
            try:
                response = self._pools.get().urlopen(
                    "POST",
                    "/?" + urlencode(fields),
                    body=sql.encode(),
                    headers=self._headers,
                    # ClickHouse stops the query itself at max_execution_time; the socket waits a bit longer.
                    timeout=urllib3.Timeout(connect=min(limit, 5.0), read=limit + 1.0),
                    preload_content=True,
                )
                break
            except urllib3.exceptions.ProtocolError as error:
                if attempt == 2:
                    raise QueryFailed(f"{self.description} dropped the connection: {error}") from None
            # NewConnectionError (refused, no route) is a ConnectTimeoutError in urllib3 2: test it first.
            except urllib3.exceptions.NewConnectionError as error:
                raise QueryFailed(f"{self.description} is unreachable: {error}") from None
            except urllib3.exceptions.TimeoutError as error:
                raise QueryTimedOut(f"{self.description} did not answer in time: {error}") from None
            except urllib3.exceptions.HTTPError as error:
                raise QueryFailed(f"{self.description} could not be asked: {error}") from None
        if response.status != 200:
            code = response.headers.get("X-ClickHouse-Exception-Code", "")
            text = response.data.decode(errors="replace").strip()
            if code == str(TIMEOUT_EXCEEDED):
                raise QueryTimedOut(text)
            raise QueryFailed(f"{self.description} answered HTTP {response.status}: {text}")
        return parse_rows(response.data)

    def close(self) -> None:
        self._pools.close()
