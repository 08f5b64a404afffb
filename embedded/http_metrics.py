"""Prometheus metrics of the ClickHouse HTTP interface, as an ASGI middleware that also serves them.

It wraps the front (embedded/http.py) without touching it: each request is counted by kind
(query, insert, other statements, ping), timed until its last byte, and its error counted by
ClickHouse's exception code; inserts add the rows ClickHouse reports written; the requests not
yet answered are listed (``unfinished``), so a stop that waits for them can say which. The front
notes in the request's scope what it found: the kind of a statement sent in the body (`KIND`),
and that an insert's rows are counted where its joined batch is inserted (`ROWS_COUNTED`, through
``count_written_rows``), not from the answer, which carries the batch's figures. ``GET /metrics``
answers with these and every other registry handed in (the process's default one, which holds the
Kafka bridge's metrics, and in `analytics up` the gRPC service's), in Prometheus' text format.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from urllib.parse import parse_qs

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_asgi_app

from core.errors import Code

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_QUERY_WORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN")
# What the front notes in a request's scope for the middleware (see the module's docstring).
KIND = "analytics.statement_kind"
ROWS_COUNTED = "analytics.rows_counted_by_batch"


class Registries:
    """Several registries behind one `collect()`; registries can join later (a component that starts)."""

    def __init__(self, registries: Iterable = ()):
        self.registries = list(registries)

    def add(self, registry) -> None:
        if registry not in self.registries:
            self.registries.append(registry)

    def collect(self):
        for registry in list(self.registries):
            yield from registry.collect()

    def restricted_registry(self, names):
        """What `/metrics?name[]=...` asks for (prometheus-client calls this)."""
        wanted = set(names)
        parent = self

        class Restricted:
            def collect(self):
                for family in parent.collect():
                    samples = [sample for sample in family.samples if sample.name in wanted]
                    if samples:
                        family.samples = samples
                        yield family

        return Restricted()


def _describe(scope, query: str) -> str:
    """A request in a line of a log: method, path, statement (or where it comes), client, query id."""
    client = scope.get("client") or ("?", 0)
    parameters = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    statement = " ".join(query.split())[:120] if query else "statement in the body"
    query_id = parameters.get("query_id", [""])[0]
    agent = dict(scope.get("headers") or []).get(b"user-agent", b"?").decode("latin-1")[:60]
    others = sorted(name for name in parameters if name not in ("query", "query_id"))
    return (
        f"{scope.get('method', '?')} {scope.get('path', '/')} {statement!r} from {client[0]}:{client[1]}"
        + (f" query_id={query_id}" if query_id else "")
        + (f" with {', '.join(others)}" if others else "")
        + f" ({agent})"
    )


def statement_kind(query: str) -> str:
    word = query.lstrip(" \t\r\n(").split(None, 1)[0].upper() if query.strip() else ""
    return keyword_kind(word)


def _query_and_kind(scope) -> tuple[str, str | None]:
    """A request's statement from its URL, and its kind: None when the statement comes in the body."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("query", [""])[0]
    if scope.get("path", "/") in ("/ping", "/replicas_status"):
        return query, "ping"
    return query, statement_kind(query) if query else None


def keyword_kind(word: str) -> str:
    """The kind of a statement by its first keyword (upper case)."""
    if word == "INSERT":
        return "insert"
    return "query" if word in _QUERY_WORDS else "other"


class MetricsMiddleware:
    """ASGI middleware: measures every HTTP request and serves GET /metrics."""

    def __init__(self, app, registries: Registries | None = None):
        self.app = app
        self.registry = CollectorRegistry()
        self.registries = registries if registries is not None else Registries([REGISTRY])
        self.registries.add(self.registry)
        self.exposition = make_asgi_app(self.registries)
        self.requests = Counter(
            "analytics_http_requests", "HTTP requests, by kind of statement", ["kind"], registry=self.registry
        )
        self.errors = Counter(
            "analytics_http_errors",
            "HTTP requests answered with an error, by kind and ClickHouse exception code",
            ["kind", "code"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "analytics_http_request_seconds",
            "Time from a request's arrival to its answer's last byte, by kind (queries and inserts)",
            ["kind"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "analytics_http_written_rows",
            "Rows ClickHouse reports written by inserts, into every table their views feed",
            registry=self.registry,
        )
        self.late_errors = Counter(
            "analytics_http_late_insert_errors",
            "Inserts answered at once (wait_for_async_insert=0) whose rows were refused when their batch"
            " went in, by ClickHouse exception code",
            ["code"],
            registry=self.registry,
        )
        # Each request not yet answered to its last byte: when it arrived, its scope and statement,
        # and whether its answer has begun. Described only when a stop asks (unfinished).
        self._in_flight: dict[int, list] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "/")
        if path == "/metrics" and scope.get("method") == "GET":
            return await self.exposition(scope, receive, send)
        query, kind = _query_and_kind(scope)
        started = time.perf_counter()
        outcome: dict = {}
        in_flight = self._in_flight[id(scope)] = [started, scope, query, False]

        async def observe(message):
            if message["type"] == "http.response.start":
                in_flight[3] = True
                headers = {
                    name.decode("latin-1").lower(): value.decode("latin-1") for name, value in message["headers"]
                }
                outcome.update(status=message["status"], headers=headers)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                outcome.update(rows_counted=scope.get(ROWS_COUNTED, False))
                self._record(scope.get(KIND, kind), outcome, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            self._in_flight.pop(id(scope), None)

    def count_refused(self, scope, seconds: float) -> None:
        """A request the allow-list (embedded/allowed_clients.py) answered with code 516 before it
        reached the interface: counted as the interface counts its own errors."""
        _, kind = _query_and_kind(scope)
        headers = {"x-clickhouse-exception-code": str(int(Code.AUTHENTICATION_FAILED))}
        self._record(kind or "other", {"status": 403, "headers": headers}, seconds)

    def count_late_refusal(self, code: str) -> None:
        """An insert answered at once (wait_for_async_insert=0) whose rows its batch's insert refused."""
        self.late_errors.labels(code).inc()

    def count_written_rows(self, rows: int) -> None:
        """Rows an insert the front ran on its own wrote (a joined batch of asynchronous inserts)."""
        self.rows.inc(rows)

    def unfinished(self) -> list[str]:
        """The requests not yet answered, oldest first, each with its age."""
        now = time.perf_counter()
        return [
            f"{now - started:.1f} s: {_describe(scope, query)}" + (", answering" if answering else "")
            for started, scope, query, answering in sorted(self._in_flight.values(), key=lambda entry: entry[0])
        ]

    def _record(self, kind: str | None, outcome: dict, seconds: float) -> None:
        headers = outcome.get("headers", {})
        if kind is None:  # the statement came in the body: a result format means it was a query
            kind = "query" if "x-clickhouse-format" in headers else "other"
        self.requests.labels(kind).inc()
        self.seconds.labels(kind).observe(seconds)
        status = outcome.get("status", 500)
        if status >= 400:
            self.errors.labels(kind, headers.get("x-clickhouse-exception-code", str(status))).inc()
        elif kind == "insert" and "x-clickhouse-summary" in headers and not outcome.get("rows_counted"):
            with contextlib.suppress(ValueError, TypeError):  # a summary that is not ClickHouse's shape
                self.rows.inc(int(json.loads(headers["x-clickhouse-summary"]).get("written_rows", 0)))
