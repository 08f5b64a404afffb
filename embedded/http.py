"""The ClickHouse HTTP interface, served over the embedded chDB engine.

Unmodified ClickHouse clients (clickhouse-connect, dbt-clickhouse, curl, JDBC over HTTP) talk to
this as to a ClickHouse server. The ASGI server (uvicorn) does HTTP itself: chunked bodies,
keep-alive and graceful shutdown; this module maps a request onto chDB the way ClickHouse's
HTTPHandler maps it onto its executor:

  request text  = the ``query`` parameter + "\\n" + the (decompressed) body
  INSERT ... FORMAT X <data>   -> the data streams into chDB through a FIFO (FROM INFILE)
  any other statement          -> run with the request's settings, database and parameters;
                                  results stream back block by block

Every chDB call of a request runs in a worker thread, one call at a time, on a connection the
request owns until it ends: no connection is ever used by two threads at once.

A request's connection is its Lease (embedded.lease); INSERT bodies reach chDB through embedded.inserts,
a topic's one at a time (embedded.landing_locks); answers are built by embedded.responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from core.errors import Code
from embedded import async_inserts, readonly, web_ui
from embedded.engine import Engine
from embedded.errors import ClickHouseError, unexpected
from embedded.fence import Fence
from embedded.formats import (
    ARRAY_OF_ROWS_SETTING,
    SHAPING_SETTINGS,
    TIMEZONE_SETTING,
    is_concatenable,
    may_be_on,
    statement_timezone,
    writes_rows_after_the_data,
)
from embedded.http_metrics import KIND, ROWS_COUNTED, keyword_kind
from embedded.inserts import insert_coalesced, insert_from_file, insert_through_fifo
from embedded.kill_marks import by_client_query_id, watched
from embedded.landing_locks import LandingLocks
from embedded.lease import Lease
from embedded.native_blocks import NativeRevision
from embedded.request import BodyReader, RequestSpec, parse_request, timeout_setting
from embedded.responses import Responses, request_summary
from embedded.sqltext import (
    IncompleteText,
    InsertData,
    MultiStatement,
    Query,
    find_insert_data,
    output_settings,
    parse_query,
    rewritten,
    tokens,
)

log = logging.getLogger(__name__)


@dataclass
class FrontConfig:
    """How the front behaves; filled from the project's settings by embedded.server."""

    user: str = "default"
    password: str = ""
    max_concurrent_queries: int = 64
    # INSERT bodies up to this size are read whole and handed over as a file; larger ones stream
    # through a FIFO while they arrive.
    small_insert_limit: int = 1 << 20
    # How long a request body may stop arriving before the request fails (ClickHouse's
    # http_receive_timeout, whose default this is; a request may set its own).
    receive_timeout: float = 30.0
    # How long an answer may wait for a client that stopped reading it (http_send_timeout, 30 s).
    send_timeout: float = 30.0
    default_session_timeout: float = 60.0
    max_session_timeout: float = 3600.0
    # wait_end_of_query=1 buffers the answer in memory up to this size, then in a temporary file.
    response_memory_buffer: int = 16 << 20
    # Let users' SQL reach files and the network as clickhouse-local does (file(), url(), INTO OUTFILE...).
    allow_file_access: bool = False
    # async_insert for requests that do not say: what a ClickHouse server's default profile may set.
    async_insert: bool = False


class Front:
    """State shared by all requests: the engine, its limits and the queries running now."""

    def __init__(self, engine: Engine, config: FrontConfig):
        self.engine = engine
        self.config = config
        self.running: set[str] = set()
        self.async_inserts = async_inserts.AsyncInsertQueue()
        self.landing_locks = LandingLocks()  # a topic's inserts one at a time (first-seen gates)
        self.limiter = anyio.CapacityLimiter(config.max_concurrent_queries + 8)
        self.fence = (
            None if config.allow_file_access else Fence(config.user, engine.table_functions(), engine.user_files)
        )
        self.watched = partial(watched, self.in_thread, engine)  # a chDB call a client's going away may cancel
        self.responses = Responses(engine, self.in_thread, self.watched, self.end)
        # Rows written by the inserts of joined asynchronous batches, which no single answer
        # reports: the metrics middleware sets it (embedded/server.py).
        self.count_written_rows: Callable[[int], None] = lambda rows: None
        # Inserts answered at once (wait_for_async_insert=0) refused when their batch went in, by code.
        self.count_late_refusal: Callable[[str], None] = lambda code: None

    async def in_thread(self, function: Callable, *args) -> Any:
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)

    # -- entry points ------------------------------------------------------------------------
    async def ping(self, request: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def query(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD") and not request.url.query:
            return PlainTextResponse("Ok.\n")  # a server's static answer at exactly "/": no credentials asked
        try:
            spec = await self._parse_request(request)
        except ClickHouseError as error:
            return self.responses.error(error, None)
        if request.method in ("GET", "HEAD") and not spec.query_param:
            return PlainTextResponse("Ok.\n")
        if spec.query_id in self.running:
            return self.responses.error(
                ClickHouseError.of(
                    Code.QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING,
                    f"Query with id = {spec.query_id} is already running.",
                ),
                spec,
            )
        if len(self.running) >= self.config.max_concurrent_queries:
            return self.responses.error(
                ClickHouseError.of(
                    Code.TOO_MANY_SIMULTANEOUS_QUERIES,
                    f"Too many simultaneous queries. Maximum: {self.config.max_concurrent_queries}",
                ),
                spec,
            )
        self.running.add(spec.query_id)
        lease = None
        try:
            lease = await self.lease_for(spec)
            return await self._execute(request, spec, lease)
        except ClickHouseError as error:
            if lease is not None:
                await self.end(lease)
            return self.responses.error(error, spec)
        except ClientDisconnect:
            # The client went away before its request body was whole: nobody reads an answer.
            log.info("query %s: the client went away while sending its request", spec.query_id)
            if lease is not None:
                lease.connection.reusable = False
                await self.end(lease)
            return Response(status_code=400)
        except Exception as error:
            if lease is not None:
                lease.connection.reusable = False
                await self.end(lease)
            return self.responses.error(unexpected(error, spec.query_id), spec)
        except BaseException:
            if lease is not None:
                await self.end(lease)
            raise
        finally:
            # A streamed answer keeps its query id until the stream ends (see _end).
            if lease is None or lease.ended:
                self.running.discard(spec.query_id)

    # -- request parsing ---------------------------------------------------------------------
    async def _parse_request(self, request: Request) -> RequestSpec:
        config = self.config
        return await parse_request(
            request, config.user, config.password, config.max_session_timeout, config.default_session_timeout
        )

    # -- connections -------------------------------------------------------------------------
    async def lease_for(self, spec: RequestSpec) -> Lease:
        engine = self.engine
        if spec.session_id:
            session = engine.session(spec.user, spec.session_id, spec.session_timeout, create=not spec.session_check)
            if session is None:
                raise ClickHouseError.of(Code.SESSION_NOT_FOUND, f"Session {spec.session_id} not found")
            if session.busy:
                raise ClickHouseError.of(
                    Code.SESSION_IS_LOCKED, f"Session {spec.session_id} is locked by a concurrent client"
                )
            session.busy = True
            return Lease(self, spec, session.connection, session)
        if spec.readonly:
            # readonly=1 forbids changing settings, including itself: never on a pooled connection.
            return Lease(self, spec, await self.in_thread(engine.new_connection), None)
        connection = engine.acquire_idle() or await self.in_thread(engine.acquire)
        return Lease(self, spec, connection, None)

    async def end(self, lease: Lease) -> None:
        if lease.ended:
            return
        lease.ended = True
        with anyio.CancelScope(shield=True):
            try:
                if lease.session is not None:
                    await self.in_thread(lease.restore)
                else:
                    lease.restore()  # for a pooled connection this only decides reuse: no chDB call
            finally:
                if lease.session is not None:
                    lease.session.busy = False
                    lease.session.touch()
                    ending = lease.session_broken or lease.spec.close_session
                    if ending and self.engine.end_session(lease.spec.user, lease.session):
                        await self.in_thread(lease.session.connection.close)
                elif not self.engine.release_to_pool(lease.connection):
                    await self.in_thread(lease.connection.close)
                self.running.discard(lease.spec.query_id)

    # -- execution ---------------------------------------------------------------------------
    async def _execute(self, request: Request, spec: RequestSpec, lease: Lease) -> Response:
        timeout = timeout_setting(spec.settings, "http_receive_timeout", self.config.receive_timeout)
        spec.send_timeout = timeout_setting(spec.settings, "http_send_timeout", self.config.send_timeout)
        body = BodyReader(request, empty=spec.body_in_form, timeout=timeout)
        head = bytearray(spec.query_param.encode() + b"\n" if spec.query_param else b"")
        while True:
            insert = find_insert_data(head.decode("latin-1"), complete=body.exhausted)
            if insert is not False:
                break
            if len(head) > spec.max_query_size:
                raise _query_too_large(spec)
            chunk = await body.read()
            if chunk is not None:
                head += chunk
        if insert is not None and insert.select and insert.input_call is None:
            # INSERT ... SELECT ... FORMAT X without input(): nothing reads the data, as on a server.
            head, insert, body.exhausted = head[: insert.data_start], None, True
        if insert is not None:
            if insert.data_start > spec.max_query_size + 1:  # the statement, not its data (as ClickHouse)
                raise _query_too_large(spec)
            if self.fence is not None:
                rewrites = self.fence.check(list(tokens(head[: insert.data_start].decode("latin-1"))))
                if rewrites:
                    head = rewritten(head, rewrites)
                    insert = find_insert_data(head.decode("latin-1"), complete=body.exhausted)
            request.scope[KIND] = "insert"  # also when the statement came in the body
            return await self._insert(request.scope, spec, lease, head, insert, body)

        while (chunk := await body.read()) is not None:
            head += chunk
            if len(head) > spec.max_query_size + 1:
                raise _query_too_large(spec)
        # chDB is given at least its default limit (request.py): the asked one is held to here.
        if len(head.rstrip()) > spec.max_query_size:
            raise _query_too_large(spec)
        text = head.decode("latin-1")
        if not text.strip():
            raise ClickHouseError.of(Code.SYNTAX_ERROR, "Empty query")
        try:
            statement = parse_query(text)
        except MultiStatement:
            raise ClickHouseError.of(
                Code.SYNTAX_ERROR,
                "Syntax error (Multi-statements are not allowed): failed at position "
                f"{text.find(';') + 1}: end of query",
            ) from None
        except IncompleteText as unclosed:  # the whole request ends inside a literal or a comment
            raise ClickHouseError.of(Code.SYNTAX_ERROR, unclosed.syntax_error(text)) from None
        request.scope[KIND] = keyword_kind(statement.first_keyword)
        fenced = self.fence.check(statement.tokens) if self.fence is not None else []
        if rewrites := fenced + by_client_query_id(statement):
            head = rewritten(head, rewrites)
            statement = parse_query(head.decode("latin-1"))
        return await self._statement(spec, lease, head, statement)

    async def _insert(
        self, scope: dict, spec: RequestSpec, lease: Lease, head: bytearray, insert: InsertData, body: BodyReader
    ) -> Response:
        # The rows reach chDB through FROM INFILE, never pasted after the statement (embedded/inserts.py).
        if spec.readonly:  # before an asynchronous insert's queue, which would run it on another request's lease
            raise readonly.refusal(spec.method, spec.user)
        async_inserts.check_settings(spec.settings)
        limit = self.config.small_insert_limit
        while not body.exhausted and len(head) - insert.data_start <= limit:
            chunk = await body.read()
            if chunk is not None:
                head += chunk
        small = body.exhausted and len(head) - insert.data_start <= limit
        if (
            small
            and spec.session_id is None
            and not insert.select
            and async_inserts.wanted(spec.settings, insert.format, self.config.async_insert)
        ):
            # The answer carries the joined batch's figures, which its insert counts once.
            scope[ROWS_COUNTED] = True
            result = await insert_coalesced(self, spec, lease, head, insert)
            return self.responses.response(spec, b"", request_summary(spec, result), None)
        try:
            if small:
                result = await insert_from_file(self, lease, head, insert)
            else:
                result = await insert_through_fifo(self, lease, head, insert, body)
        finally:
            self.engine.writes.inserted()  # even a failed insert may have committed blocks
        await self.end(lease)
        return self.responses.response(spec, b"", request_summary(spec, result), None)

    async def _statement(self, spec: RequestSpec, lease: Lease, head: bytearray, statement: Query) -> Response:
        fmt = statement.output_format or spec.default_format
        revision = NativeRevision(spec.client_protocol_version) if fmt.lower() == "native" else None
        settings = spec.settings
        if spec.session_id is not None and statement.streamable and revision is None:
            # A session's earlier SETs hold too: ask its connection (one short query).
            spooled = not is_concatenable(fmt, True)
            names = (*SHAPING_SETTINGS, TIMEZONE_SETTING)
            settings = await self.in_thread(lease.settings_in_force, bytes(head), names, spooled)
        spec.timezone = await self._timezone(lease, statement, settings)
        if not statement.streamable or writes_rows_after_the_data(statement, settings, fmt):
            # DDL, SET, SHOW, DESCRIBE...: chDB runs these whole; their answers are small. So does a
            # result with totals or extremes: chDB's streamed chunks and the spool leave them out.
            try:
                async with self.landing_locks.held(bytes(head)):  # INSERT ... SELECT
                    result = await self.watched(spec, lease.run, bytes(head), fmt)
            finally:
                self._count_write(statement, lease)
            data = result.bytes() if revision is None else revision.convert(result.bytes())
            await self.end(lease)
            return self.responses.response(
                spec, data, request_summary(spec, result), fmt if statement.returns_result else None
            )

        if is_concatenable(fmt, may_be_on(ARRAY_OF_ROWS_SETTING, settings, statement)):
            stream, first = await self.watched(
                spec, lease.start_stream, bytes(head), fmt, revision.convert if revision else None
            )
            if stream.done:  # the whole answer arrived with the first fetches: no need to stream
                await self.end(lease)
                return self.responses.response(spec, first, request_summary(spec, None, stream), fmt)
            return await self.responses.stream(spec, lease, stream, first, fmt)

        # Formats with a header or a wrapper: spool the result as Native, convert it in one piece.
        clause = statement.format_clause
        native_text = bytes(head[: clause[0]] + head[clause[1] :]) if clause else bytes(head)
        outcome = await self.watched(
            spec, lease.run_to_file, native_text, bytes(head), fmt, output_settings(statement), whole_result=True
        )
        if isinstance(outcome, bytes):
            await self.end(lease)
            return self.responses.response(spec, outcome, request_summary(spec, None), fmt)
        return await self.responses.file(spec, lease, outcome, fmt)

    async def _timezone(self, lease: Lease, statement: Query, settings: dict[str, str]) -> str | None:
        """The session_timezone the statement runs with, as a server reports it in X-ClickHouse-Timezone:
        its own SETTINGS clause's, else the URL's, else its session's SET; None for the server's zone."""
        zone = statement_timezone(statement)
        if zone is None:
            zone = settings.get(TIMEZONE_SETTING)
        if zone is None and lease.session is not None:
            try:
                own = await self.in_thread(lease.session.own_values, [TIMEZONE_SETTING])
            except ClickHouseError:
                return None  # the session's SETs refuse even this: the statement meets the same refusal
            zone = own.get(TIMEZONE_SETTING, ("", False))[0]
        return zone or None

    def _count_write(self, statement: Query, lease: Lease) -> None:
        """Count a whole statement that may have written data in the engine's WriteLog.

        INSERT ... SELECT and INSERT ... FROM INFILE are inserts; any other statement chDB's own
        parser calls mutating (ALTER, TRUNCATE, DROP, OPTIMIZE, CREATE...) is a change. Reads and
        control statements (SET, USE, SYSTEM, KILL) are not counted, nor one refused before it ran.
        """
        if statement.first_keyword == "INSERT":
            self.engine.writes.inserted()
        elif lease.statement_class in ("MUTATING", "MUTATING_GLOBAL", "UNKNOWN") and lease.ran:
            self.engine.writes.changed()


def _query_too_large(spec: RequestSpec) -> ClickHouseError:
    return ClickHouseError.of(
        Code.SYNTAX_ERROR,
        f"Max query size exceeded: the statement is longer than max_query_size ({spec.max_query_size} bytes)",
    )


def create_app(engine: Engine, config: FrontConfig, extra_lifespan=None) -> Starlette:
    """The ASGI application: ``/`` for queries, ``/ping`` and ``/replicas_status`` for probes.

    ``extra_lifespan`` (an async context manager factory taking the app) runs inside the app's
    own: it starts after the engine is ready and ends before chDB is closed.
    """
    front = Front(engine, config)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        reaper = asyncio.create_task(_expire_sessions(front))
        try:
            if extra_lifespan is None:
                yield
            else:
                async with extra_lifespan(app):
                    yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            await front.async_inserts.drain()  # answered inserts still waiting for their batch
            # In-flight requests have finished by now; uvicorn re-raises the stop signal right after
            # the lifespan ends, so chDB is closed here rather than after uvicorn returns.
            await anyio.to_thread.run_sync(engine.close)

    app = Starlette(
        routes=[
            Route("/", front.query, methods=["GET", "POST"]),
            Route("/", web_ui.options, methods=["OPTIONS"]),
            Route("/play", web_ui.play, methods=["GET", "HEAD"]),
            Route("/ping", front.ping, methods=["GET", "HEAD"]),
            Route("/replicas_status", front.ping, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.front = front
    return app


async def _expire_sessions(front: Front) -> None:
    while True:
        await asyncio.sleep(1.0)
        for session in front.engine.expired_sessions():
            await front.in_thread(session.connection.close)
