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
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import string
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from embedded import async_inserts, errors
from embedded.codecs import Encoder, ResponseEncoder
from embedded.engine import Connection, Engine, ResultStream, Session
from embedded.errors import ClickHouseError
from embedded.fence import Fence
from embedded.formats import content_type, is_concatenable
from embedded.native_blocks import NativeRevision
from embedded.native_compression import BlockEncoder
from embedded.request import BodyReader, RequestSpec, parse_request
from embedded.sqltext import (
    InsertData,
    MultiStatement,
    Query,
    find_insert_data,
    parse_query,
    quote_string,
    tokens,
)

log = logging.getLogger(__name__)

_TAG_ALPHABET = string.ascii_letters + string.digits


@dataclass
class FrontConfig:
    """How the front behaves; filled from the project's settings by embedded.server."""

    user: str = "default"
    password: str = ""
    max_concurrent_queries: int = 64
    # INSERT bodies up to this size are read whole and handed over as a file; larger ones stream
    # through a FIFO while they arrive.
    small_insert_limit: int = 1 << 20
    default_session_timeout: float = 60.0
    max_session_timeout: float = 3600.0
    # wait_end_of_query=1 buffers the answer in memory up to this size, then in a temporary file.
    response_memory_buffer: int = 16 << 20
    # Let users' SQL reach files and the network as clickhouse-local does (file(), url(), INTO OUTFILE...).
    allow_file_access: bool = False


class Front:
    """State shared by all requests: the engine, its limits and the queries running now."""

    def __init__(self, engine: Engine, config: FrontConfig):
        self.engine = engine
        self.config = config
        self.running: set[str] = set()
        self.async_inserts = async_inserts.AsyncInsertQueue()
        self.async_insert_tasks: set[asyncio.Future] = set()
        self.limiter = anyio.CapacityLimiter(config.max_concurrent_queries + 8)
        self.fence = (
            None if config.allow_file_access else Fence(config.user, engine.table_functions(), engine.user_files)
        )

    async def in_thread(self, function: Callable, *args) -> Any:
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)

    # -- entry points ------------------------------------------------------------------------
    async def ping(self, request: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def query(self, request: Request) -> Response:
        try:
            spec = await self._parse_request(request)
        except ClickHouseError as error:
            return self._error_response(error, None)
        if request.method == "GET" and not spec.query_param:
            return PlainTextResponse("Ok.\n")
        if spec.query_id in self.running:
            return self._error_response(
                ClickHouseError.of(
                    errors.QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING,
                    f"Query with id = {spec.query_id} is already running.",
                ),
                spec,
            )
        if len(self.running) >= self.config.max_concurrent_queries:
            return self._error_response(
                ClickHouseError.of(
                    errors.TOO_MANY_SIMULTANEOUS_QUERIES,
                    f"Too many simultaneous queries. Maximum: {self.config.max_concurrent_queries}",
                ),
                spec,
            )
        self.running.add(spec.query_id)
        lease = None
        try:
            lease = await self._lease(spec)
            return await self._execute(request, spec, lease)
        except ClickHouseError as error:
            if lease is not None:
                await self._end(lease)
            return self._error_response(error, spec)
        except Exception as error:
            log.exception("query %s failed inside the embedded server", spec.query_id)
            if lease is not None:
                lease.connection.reusable = False
                await self._end(lease)
            return self._error_response(
                ClickHouseError.of(errors.UNKNOWN_EXCEPTION, f"{type(error).__name__}: {error}"), spec
            )
        except BaseException:
            if lease is not None:
                await self._end(lease)
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
    async def _lease(self, spec: RequestSpec) -> Lease:
        engine = self.engine
        if spec.session_id:
            session = engine.session(spec.user, spec.session_id, spec.session_timeout, create=not spec.session_check)
            if session is None:
                raise ClickHouseError.of(errors.SESSION_NOT_FOUND, f"Session {spec.session_id} not found")
            if session.busy:
                raise ClickHouseError.of(
                    errors.SESSION_IS_LOCKED, f"Session {spec.session_id} is locked by a concurrent client"
                )
            session.busy = True
            return Lease(self, spec, session.connection, session)
        if spec.readonly:
            # readonly=1 forbids changing settings, including itself: never on a pooled connection.
            return Lease(self, spec, await self.in_thread(engine.new_connection), None)
        connection = engine.acquire_idle() or await self.in_thread(engine.acquire)
        return Lease(self, spec, connection, None)

    async def _end(self, lease: Lease) -> None:
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
                elif not self.engine.release_to_pool(lease.connection):
                    await self.in_thread(lease.connection.close)
                self.running.discard(lease.spec.query_id)

    # -- execution ---------------------------------------------------------------------------
    async def _execute(self, request: Request, spec: RequestSpec, lease: Lease) -> Response:
        body = BodyReader(request, empty=spec.body_in_form)
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
        if insert is not None:
            if self.fence is not None:
                rewrites = self.fence.check(list(tokens(head[: insert.data_start].decode("latin-1"))))
                if rewrites:
                    head = _rewritten(head, rewrites)
                    insert = find_insert_data(head.decode("latin-1"), complete=body.exhausted)
            return await self._insert(spec, lease, head, insert, body)

        while (chunk := await body.read()) is not None:
            head += chunk
            if len(head) > spec.max_query_size + 1:
                raise _query_too_large(spec)
        text = head.decode("latin-1")
        if not text.strip():
            raise ClickHouseError.of(errors.SYNTAX_ERROR, "Empty query")
        try:
            statement = parse_query(text)
        except MultiStatement:
            raise ClickHouseError.of(
                errors.SYNTAX_ERROR,
                "Syntax error (Multi-statements are not allowed): failed at position "
                f"{text.find(';') + 1}: end of query",
            ) from None
        if self.fence is not None and (rewrites := self.fence.check(statement.tokens)):
            head = _rewritten(head, rewrites)
            statement = parse_query(head.decode("latin-1"))
        return await self._statement(spec, lease, head, statement)

    async def _insert(
        self, spec: RequestSpec, lease: Lease, head: bytearray, insert: InsertData, body: BodyReader
    ) -> Response:
        # The rows always reach chDB through FROM INFILE, never pasted after the statement: chDB
        # (like clickhouse-local) ends inline INSERT data at the first blank line and runs the
        # rest as SQL, so "\n\n" in a body (text, or bytes of a Native block) would be executed.
        limit = self.config.small_insert_limit
        while not body.exhausted and len(head) - insert.data_start <= limit:
            chunk = await body.read()
            if chunk is not None:
                head += chunk
        small = body.exhausted and len(head) - insert.data_start <= limit
        if small and spec.session_id is None and async_inserts.wanted(spec.settings, insert.format):
            return await self._insert_coalesced(spec, lease, head, insert)
        if small:
            result = await self._insert_from_file(lease, head, insert)
        else:
            result = await self._insert_through_fifo(lease, head, insert, body)
        await self._end(lease)
        return self._response(spec, b"", _summary(spec, result), None)

    async def _insert_coalesced(self, spec: RequestSpec, lease: Lease, head: bytearray, insert: InsertData):
        """async_insert=1: joined with other small inserts of the same kind (embedded/async_inserts.py)."""
        await self._end(lease)  # the batch gets a connection of its own when it is inserted
        statement = bytes(head[: insert.data_start])
        key = async_inserts.queue_key(spec.user, spec.database, statement, spec.settings)
        batch, outcome, leader = self.async_inserts.join(
            key, insert.format, bytes(head[insert.data_start :]), async_inserts.max_data_size(spec.settings)
        )
        if leader:
            task = asyncio.ensure_future(self._lead_batch(batch, spec, head, insert))
            self.async_insert_tasks.add(task)
            task.add_done_callback(self.async_insert_tasks.discard)
        if not async_inserts.waits(spec.settings):
            return self._response(spec, b"", _summary(spec, None), None)
        result = await outcome
        return self._response(spec, b"", _summary(spec, result), None)

    async def _lead_batch(self, batch, spec: RequestSpec, head: bytearray, insert: InsertData) -> None:
        lease = None

        async def run(rows: bytes):
            nonlocal lease
            lease = lease or await self._lease(spec)
            return await self._insert_from_file(lease, head, insert, rows)

        try:
            await self.async_inserts.lead(batch, async_inserts.busy_timeout_s(spec.settings), run)
        except Exception:
            log.exception("an asynchronous insert failed inside the embedded server")
        finally:
            if lease is not None:
                await self._end(lease)

    async def _insert_from_file(self, lease: Lease, head: bytearray, insert: InsertData, rows: bytes | None = None):
        """A small, complete body (or `rows` instead of it): write it to a file and let chDB read it."""
        path = self.engine.tmp_dir / f"{uuid.uuid4().hex}.rows"
        try:
            path.write_bytes(head[insert.data_start :] if rows is None else rows)
            statement = insert.statement_reading_from(head[: insert.data_start], str(path))
            return await self.in_thread(lease.run, statement, "TabSeparated", "MUTATING")
        except ClickHouseError as error:
            raise error.without_file(str(path), "the request body") from None
        finally:
            path.unlink(missing_ok=True)

    async def _insert_through_fifo(self, lease: Lease, head: bytearray, insert: InsertData, body: BodyReader):
        """A large or still-arriving body: stream it into chDB through a FIFO as it comes."""
        fifo = self.engine.tmp_dir / f"{uuid.uuid4().hex}.fifo"
        os.mkfifo(fifo, 0o600)
        try:
            statement = insert.statement_reading_from(head[: insert.data_start], str(fifo))
            done = asyncio.ensure_future(self.in_thread(lease.run, statement, "TabSeparated", "MUTATING"))
            pipe = FifoWriter(fifo, done)
            try:
                await pipe.open()
                await pipe.write(bytes(head[insert.data_start :]))
                while (chunk := await body.read()) is not None:
                    await pipe.write(chunk)
            except ReaderGone:
                pass  # chDB stopped reading: its error (awaited below) says why
            finally:
                pipe.close()
            return await done
        except ClickHouseError as error:
            raise error.without_file(str(fifo), "the request body") from None
        finally:
            fifo.unlink(missing_ok=True)

    async def _statement(self, spec: RequestSpec, lease: Lease, head: bytearray, statement: Query) -> Response:
        fmt = statement.output_format or spec.default_format
        revision = NativeRevision(spec.client_protocol_version) if fmt.lower() == "native" else None
        if not statement.streamable:
            # DDL, SET, SHOW, DESCRIBE...: chDB runs these whole; their answers are small.
            result = await self.in_thread(lease.run, bytes(head), fmt)
            data = result.bytes() if revision is None else revision.convert(result.bytes())
            await self._end(lease)
            return self._response(spec, data, _summary(spec, result), fmt if statement.returns_result else None)

        if is_concatenable(fmt):
            stream, first = await self.in_thread(
                lease.start_stream, bytes(head), fmt, revision.convert if revision else None
            )
            if stream.done:  # the whole answer arrived with the first fetches: no need to stream
                await self._end(lease)
                return self._response(spec, first, _summary(spec, None, stream), fmt)
            return await self._stream_response(spec, lease, stream, first, fmt)

        # Formats with a header or a wrapper: spool the result as Native, convert it in one piece.
        clause = statement.format_clause
        native_text = bytes(head[: clause[0]] + head[clause[1] :]) if clause else bytes(head)
        outcome = await self.in_thread(lease.run_to_file, native_text, bytes(head), fmt)
        if isinstance(outcome, bytes):
            await self._end(lease)
            return self._response(spec, outcome, _summary(spec, None), fmt)
        return await self._file_response(spec, lease, outcome, fmt)

    # -- responses ---------------------------------------------------------------------------
    def _headers(self, spec: RequestSpec | None, summary: dict | None, fmt: str | None) -> dict[str, str]:
        headers = {
            "X-ClickHouse-Server-Display-Name": self.engine.display_name,
            "X-ClickHouse-Timezone": self.engine.timezone,
        }
        if spec is not None:
            headers["X-ClickHouse-Query-Id"] = spec.query_id
            if spec.response_encoding:
                headers["Content-Encoding"] = spec.response_encoding
        if fmt is not None:
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = content_type(fmt)
        else:
            headers["Content-Type"] = "text/plain; charset=UTF-8"
        if summary is not None:
            headers["X-ClickHouse-Summary"] = _summary_header(summary)
        return headers

    def _response(self, spec: RequestSpec, data: bytes, summary: dict, fmt: str | None) -> Response:
        headers = self._headers(spec, summary, fmt)
        encoder = _response_encoder(spec)
        if encoder is not None:
            data = encoder.feed(data) + encoder.finish()
        return Response(data, headers=headers, media_type=None)

    def _error_response(self, error: ClickHouseError, spec: RequestSpec | None) -> Response:
        headers = self._headers(spec, None, None)
        headers.pop("Content-Encoding", None)
        headers["X-ClickHouse-Exception-Code"] = str(error.code)
        body = error.render(self.engine.version).encode()
        if spec is not None and spec.native_compression is not None:
            # As ClickHouse does: the error goes through the compressed stream the client asked for.
            body = BlockEncoder(spec.native_compression, spec.zstd_level).feed(body)
        return Response(body, status_code=error.http_status, headers=headers)

    async def _stream_response(
        self, spec: RequestSpec, lease: Lease, stream: ResultStream, first: bytes | None, fmt: str
    ) -> Response:
        if spec.wait_end_of_query:
            try:
                spooled = await self.in_thread(lease.drain_to_buffer, stream, first)
            except BaseException:
                await self._end(lease)
                raise
            return await self._file_response(
                spec, lease, spooled, fmt, summary={"result_rows": stream.rows, "result_bytes": stream.bytes}
            )
        tag = "".join(secrets.choice(_TAG_ALPHABET) for _ in range(16))
        headers = self._headers(spec, _summary(spec, None, stream), fmt)
        headers["X-ClickHouse-Exception-Tag"] = tag

        async def chunks() -> AsyncIterator[bytes]:
            try:
                if first:
                    yield first
                while True:
                    try:
                        chunk = await self.in_thread(stream.next_chunk)
                    except ClickHouseError as error:
                        yield _exception_block(error.render(self.engine.version).rstrip("\n"), tag)
                        return
                    if chunk is None:
                        return
                    yield chunk
            finally:
                if not stream.done:
                    # The client went away mid-stream; a cancelled connection is not worth reusing.
                    lease.connection.reusable = False
                    with anyio.CancelScope(shield=True):
                        await self.in_thread(stream.cancel)
                await self._end(lease)

        return StreamingResponse(_encoded(chunks(), spec), headers=headers, media_type=None)

    async def _file_response(
        self, spec: RequestSpec, lease: Lease, source, fmt: str, summary: dict | None = None
    ) -> Response:
        """Send a finished answer held in a file (a path we delete afterwards, or a temp file)."""
        await self._end(lease)
        handle = open(source, "rb") if isinstance(source, Path) else source  # noqa: SIM115 - closed below

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while data := await anyio.to_thread.run_sync(handle.read, 1 << 20):
                    yield data
            finally:
                handle.close()
                if isinstance(source, Path):
                    source.unlink(missing_ok=True)

        headers = self._headers(spec, _summary(spec, None, None, summary), fmt)
        return StreamingResponse(_encoded(chunks(), spec), headers=headers, media_type=None)


class Lease:
    """A request's hold on one connection: prepares it, runs statements, restores it.

    Every method here runs in a worker thread, and a request calls them one at a time.
    """

    def __init__(self, front: Front, spec: RequestSpec, connection: Connection, session: Session | None):
        self.front = front
        self.spec = spec
        self.connection = connection
        self.session = session
        self.ended = False
        self._prepared = False
        self._saved_settings: dict[str, tuple[str, bool]] = {}
        self._statement_class = "UNKNOWN"
        self._temporary_table = False

    def _prepare(self, text: bytes, statement_class: str | None = None) -> None:
        if self._prepared:
            return
        self._prepared = True
        spec, connection = self.spec, self.connection
        sql = text.decode("utf-8", "replace")
        statement_class = statement_class or connection.classify(sql)
        self._statement_class = statement_class
        self._temporary_table = statement_class == "MUTATING" and _creates_temporary_table(sql)
        if spec.method == "GET" and statement_class in ("MUTATING", "MUTATING_GLOBAL"):
            raise ClickHouseError.of(
                errors.READONLY,
                "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. "
                "You should use method POST for modifying queries",
            )
        if self.session is None:
            connection.use(spec.database or "default")
            connection.apply_settings(spec.settings)
            if spec.readonly:
                connection.query(f"SET readonly = {quote_string(spec.readonly)}")
            return
        # A session keeps its own USE and SET; the request's database and settings are undone after.
        # readonly cannot be undone, so in a session it is enforced by statement class instead.
        if spec.readonly and (
            statement_class in ("MUTATING", "MUTATING_GLOBAL")
            or (spec.readonly == "1" and statement_class == "CONTROL")
        ):
            raise ClickHouseError.of(errors.READONLY, f"{spec.user}: Cannot execute query in readonly mode")
        if spec.database:
            connection.use(spec.database)
        if spec.settings:
            self._saved_settings = connection.settings_snapshot(spec.settings)
            connection.query("SET " + ", ".join(f"{n} = {quote_string(v)}" for n, v in spec.settings.items()))

    def run(self, text: bytes, fmt: str, statement_class: str | None = None):
        """Run a whole statement and return chDB's result."""
        self._prepare(text, statement_class)
        return self.connection.query(text, fmt, self.spec.params)

    def start_stream(self, text: bytes, fmt: str, transform=None) -> tuple[ResultStream, bytes]:
        """Start a streaming query and read its first two chunks.

        Early errors then get a proper HTTP status, and a small answer (``stream.done``) is
        complete before the response starts.
        """
        self._prepare(text)
        stream = self.connection.stream(text, fmt, self.spec.params)
        stream.transform = transform
        try:
            first = stream.next_chunk() or b""
            if not stream.done:
                first += stream.next_chunk() or b""
            return stream, first
        except BaseException:
            stream.cancel()
            raise

    def run_to_file(self, native_text: bytes, original_text: bytes, fmt: str) -> Path | bytes:
        """A whole result in ``fmt``, built from a Native spool: a file path, or bytes when empty."""
        self._prepare(original_text)
        tmp = self.front.engine.tmp_dir
        spool = tmp / f"{uuid.uuid4().hex}.native"
        output = tmp / f"{uuid.uuid4().hex}.out"
        try:
            stream = self.connection.stream(native_text, "Native", self.spec.params)
            with open(spool, "wb") as handle:
                while (chunk := stream.next_chunk()) is not None:
                    handle.write(chunk)
            if spool.stat().st_size == 0:
                # No rows, so no schema in the spool: the header-only answer is tiny, ask for it directly.
                return self.connection.query(original_text, fmt, self.spec.params).bytes()
            self.connection.query(
                f"INSERT INTO FUNCTION file({quote_string(str(output))}, {quote_string(fmt)}) "
                f"SELECT * FROM file({quote_string(str(spool))}, 'Native')"
            )
            return output
        except ClickHouseError as error:
            output.unlink(missing_ok=True)
            raise error.without_file(str(spool), "the result").without_file(str(output), "the output") from None
        except BaseException:
            output.unlink(missing_ok=True)
            raise
        finally:
            spool.unlink(missing_ok=True)

    def drain_to_buffer(self, stream: ResultStream, first: bytes | None):
        """Collect a whole streamed answer (wait_end_of_query=1) in memory, then on disk."""
        buffer = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - handed to the response, closed there
            max_size=self.front.config.response_memory_buffer, dir=self.front.engine.tmp_dir
        )
        try:
            if first:
                buffer.write(first)
            while (chunk := stream.next_chunk()) is not None:
                buffer.write(chunk)
        except BaseException:
            buffer.close()
            raise
        buffer.seek(0)
        return buffer

    def restore(self) -> None:
        """Undo what this request changed and decide whether a pooled connection can be reused."""
        connection = self.connection
        if self.session is None:
            # A user's SET, USE or temporary table would leak into the next request: start afresh.
            if self.spec.readonly or self._statement_class == "CONTROL" or self._temporary_table:
                connection.reusable = False
            return
        try:
            if self._statement_class == "CONTROL":
                # The statement may have been USE: the session keeps whatever database it chose.
                connection.database = connection.query("SELECT currentDatabase()").bytes().decode().strip()
                self.session.database = connection.database
            else:
                connection.use(self.session.database)
            if self._saved_settings:
                connection.query(
                    "SET "
                    + ", ".join(
                        f"{name} = {quote_string(value)}" if changed else f"{name} = DEFAULT"
                        for name, (value, changed) in self._saved_settings.items()
                    )
                )
        except ClickHouseError:
            log.exception("could not restore session %s", self.session.session_id)


def _creates_temporary_table(sql: str) -> bool:
    words = [token.upper for token, _ in zip(tokens(sql), range(2), strict=False) if token.kind == "word"]
    return words == ["CREATE", "TEMPORARY"]


class ReaderGone(Exception):
    """chDB closed the FIFO (or never opened it): the INSERT has ended, with or without an error."""


class FifoWriter:
    """Writes request bytes into the FIFO that a chDB ``INSERT ... FROM INFILE`` reads.

    Opening for writing only succeeds once chDB has opened the FIFO for reading, so data is never
    written into a pipe nobody will read; every wait also watches the INSERT, which may end early.
    """

    def __init__(self, path: Path, insert_done: asyncio.Future):
        self.path = path
        self.insert_done = insert_done
        self.fd: int | None = None

    async def open(self) -> None:
        delay = 0.0005
        while True:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                return
            except OSError as error:
                if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
            if self.insert_done.done():
                raise ReaderGone()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            try:
                written = os.write(self.fd, view)
                view = view[written:]
                continue
            except BlockingIOError:
                pass
            except BrokenPipeError:
                raise ReaderGone() from None
            writable = loop.create_future()
            loop.add_writer(self.fd, _resolve, writable)
            try:
                await asyncio.wait({writable, self.insert_done}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                loop.remove_writer(self.fd)
            if self.insert_done.done():
                raise ReaderGone()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _response_encoder(spec: RequestSpec | None) -> ResponseEncoder | None:
    stages = []
    if spec is not None and spec.native_compression is not None:
        stages.append(BlockEncoder(spec.native_compression, spec.zstd_level))
    if spec is not None and spec.response_encoding:
        stages.append(Encoder(spec.response_encoding, spec.compression_level))
    return ResponseEncoder(stages) if stages else None


async def _encoded(chunks: AsyncIterator[bytes], spec: RequestSpec) -> AsyncIterator[bytes]:
    encoder = _response_encoder(spec)
    if encoder is None:
        async for chunk in chunks:
            yield chunk
        return
    async for chunk in chunks:
        data = encoder.feed(chunk)
        if data:
            yield data
    if tail := encoder.finish():
        yield tail


# ClickHouse caps the whole __exception__ block at 16 KiB; the message gets what the framing leaves.
_MAX_EXCEPTION_BLOCK = 16 * 1024
_EXCEPTION_MARKER = b"__exception__"


def _exception_block(message: str, tag: str) -> bytes:
    """ClickHouse's marker for an error after the body has started (clients look for the tag).

    The length before the tag counts the message with its closing line break, as ClickHouse writes it.
    """
    overhead = 2 + len(_EXCEPTION_MARKER) + 2 + len(tag) + 2 + 8 + 1 + len(tag) + 2 + len(_EXCEPTION_MARKER) + 2
    text = message.encode()[: _MAX_EXCEPTION_BLOCK - overhead]
    if not text.endswith(b"\n"):
        text += b"\n"
    return b"".join(
        (
            b"\r\n" + _EXCEPTION_MARKER + b"\r\n",
            tag.encode() + b"\r\n",
            text,
            f"{len(text)} {tag}".encode() + b"\r\n",
            _EXCEPTION_MARKER + b"\r\n",
        )
    )


def _summary(spec: RequestSpec, result, stream: ResultStream | None = None, extra: dict | None = None) -> dict:
    summary = {
        "read_rows": 0,
        "read_bytes": 0,
        "written_rows": 0,
        "written_bytes": 0,
        "total_rows_to_read": 0,
        "result_rows": 0,
        "result_bytes": 0,
    }
    if result is not None:
        summary.update(
            read_rows=result.storage_rows_read(),
            read_bytes=result.storage_bytes_read(),
            written_rows=result.rows_written(),
            written_bytes=result.bytes_written(),
            result_rows=result.rows_read(),
            result_bytes=len(result.bytes()),
        )
    if stream is not None:
        summary.update(result_rows=stream.rows, result_bytes=stream.bytes)
    if extra:
        summary.update(extra)
    summary["elapsed_ns"] = time.perf_counter_ns() - spec.started_ns
    return summary


def _summary_header(summary: dict) -> str:
    # ClickHouse writes every figure as a JSON string.
    return "{" + ",".join(f'"{key}":"{int(value)}"' for key, value in summary.items()) + "}"


def _rewritten(head: bytearray, rewrites: list[tuple[int, int, str]]) -> bytearray:
    """``head`` with byte ranges replaced (the fence's file() paths), last first so offsets hold."""
    for start, end, text in sorted(rewrites, reverse=True):
        head = head[:start] + text.encode() + head[end:]
    return head


def _query_too_large(spec: RequestSpec) -> ClickHouseError:
    return ClickHouseError.of(
        errors.SYNTAX_ERROR,
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
            # In-flight requests have finished by now; uvicorn re-raises the stop signal right after
            # the lifespan ends, so chDB is closed here rather than after uvicorn returns.
            await anyio.to_thread.run_sync(engine.close)

    app = Starlette(
        routes=[
            Route("/", front.query, methods=["GET", "POST"]),
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
