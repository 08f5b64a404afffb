"""Responses as ClickHouse's HTTP handler sends them: headers, summaries, compression, streamed
answers, and the `__exception__` block that ends a body an error cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.responses import Response, StreamingResponse

from embedded import framing
from embedded.codecs import Encoder, ResponseEncoder
from embedded.engine import Engine, ResultStream
from embedded.errors import ClickHouseError
from embedded.formats import content_type
from embedded.lease import Lease
from embedded.native_compression import BlockEncoder
from embedded.request import RequestSpec

_TAG_ALPHABET = string.ascii_letters + string.digits

log = logging.getLogger(__name__)


class Responses:
    """Builds a request's response; `end` gives its lease back once the answer no longer needs it."""

    def __init__(
        self,
        engine: Engine,
        in_thread: Callable[..., Awaitable[Any]],
        watched: Callable[..., Awaitable[Any]],
        end: Callable[[Lease], Awaitable[None]],
    ):
        self.engine = engine
        self.in_thread = in_thread
        self.watched = watched  # in_thread, for a chDB call a client's going away may cancel (embedded.kill_marks)
        self._end = end

    def headers(self, spec: RequestSpec | None, summary: dict | None, fmt: str | None) -> dict[str, str]:
        # The statement's session_timezone once it ran (chDB took the zone): an error's may be no zone.
        zone = spec.timezone if spec is not None and summary is not None else None
        headers = {
            "X-ClickHouse-Server-Display-Name": self.engine.display_name,
            "X-ClickHouse-Timezone": zone if zone and zone.isascii() and zone.isprintable() else self.engine.timezone,
        }
        if spec is not None:
            # Its UTF-8 bytes, as a server sends them (Starlette writes a header's text as Latin-1).
            headers["X-ClickHouse-Query-Id"] = spec.query_id.encode().decode("latin-1")
            if spec.response_encoding:
                headers["Content-Encoding"] = spec.response_encoding
            if spec.cors:  # as ClickHouse's add_http_cors_header, answers and errors alike
                headers["Access-Control-Allow-Origin"] = "*"
        if fmt is not None:
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = content_type(fmt)
        else:
            headers["Content-Type"] = "text/plain; charset=UTF-8"
        if summary is not None:
            headers["X-ClickHouse-Summary"] = summary_header(summary)
        if spec is not None and spec.framing:
            headers["Content-Type"] = framing.CONTENT_TYPE
        return headers

    def response(self, spec: RequestSpec, data: bytes, summary: dict, fmt: str | None) -> Response:
        headers = self.headers(spec, summary, fmt)
        if spec.framing:
            data = framing.data(data) + framing.progress(summary_header(summary))
        encoder = _response_encoder(spec)
        if encoder is not None:
            data = encoder.feed(data) + encoder.finish()
        return Response(data, headers=headers, media_type=None)

    def error(self, error: ClickHouseError, spec: RequestSpec | None) -> Response:
        headers = self.headers(spec, None, None)
        headers.pop("Content-Encoding", None)
        headers["X-ClickHouse-Exception-Code"] = str(error.code)
        body = error.render(self.engine.version).encode()
        if spec is not None and spec.framing:
            body = framing.exception(error.render(self.engine.version).rstrip("\n"))
        if spec is not None and spec.native_compression is not None:
            # As ClickHouse does: the error goes through the compressed stream the client asked for.
            body = BlockEncoder(spec.native_compression, spec.zstd_level).feed(body)
        return Response(body, status_code=error.http_status, headers=headers)

    async def stream(
        self, spec: RequestSpec, lease: Lease, stream: ResultStream, first: bytes | None, fmt: str
    ) -> Response:
        if spec.wait_end_of_query:
            try:
                spooled = await self.watched(spec, lease.drain_to_buffer, stream, first)
            except BaseException:
                await self._end(lease)
                raise
            return await self.file(
                spec, lease, spooled, fmt, summary={"result_rows": stream.rows, "result_bytes": stream.bytes}
            )
        tag = "".join(secrets.choice(_TAG_ALPHABET) for _ in range(16))
        headers = self.headers(spec, request_summary(spec, None, stream), fmt)
        headers["X-ClickHouse-Exception-Tag"] = tag

        async def release() -> None:
            if not stream.done:
                # The client went away mid-stream; a cancelled connection is not worth reusing.
                lease.connection.reusable = False
                await self.in_thread(stream.cancel)
            await self._end(lease)

        async def chunks() -> AsyncIterator[bytes]:
            frame = framing.data if spec.framing else _unframed
            if first:
                yield frame(first)
            while True:
                try:
                    chunk = await self.watched(spec, stream.next_chunk)
                except ClickHouseError as error:
                    message = error.render(self.engine.version).rstrip("\n")
                    yield framing.exception(message) if spec.framing else _exception_block(message, tag)
                    return
                if chunk is None:
                    return
                yield frame(chunk)

        return TimedStreamingResponse(
            encoded(chunks(), spec), spec.send_timeout, release, headers=headers, media_type=None
        )

    async def file(self, spec: RequestSpec, lease: Lease, source, fmt: str, summary: dict | None = None) -> Response:
        """Send a finished answer held in a file (a path we delete afterwards, or a temp file)."""
        await self._end(lease)
        handle = open(source, "rb") if isinstance(source, Path) else source  # noqa: SIM115 - closed below
        frame = framing.data if spec.framing else _unframed

        async def chunks() -> AsyncIterator[bytes]:
            while data := await anyio.to_thread.run_sync(handle.read, 1 << 20):
                yield frame(data)

        async def release() -> None:
            handle.close()
            if isinstance(source, Path):
                source.unlink(missing_ok=True)

        headers = self.headers(spec, request_summary(spec, None, None, summary), fmt)
        return TimedStreamingResponse(
            encoded(chunks(), spec), spec.send_timeout, release, headers=headers, media_type=None
        )


class TimedStreamingResponse(StreamingResponse):
    """A streamed answer that gives up on a client that takes none of it for ``send_timeout`` seconds.

    As ClickHouse's http_send_timeout: without it a client that stops reading (and keeps its
    connection open) would hold the query, its chDB connection and the server's stop for ever.
    The answer ends there; the connection is closed and the query cancelled as when the client
    goes away. ``release`` runs once the answer ends, whichever way: all sent, the client gone, or
    timed out, even before the first byte (the headers of a pipelined answer can wait behind
    another one the client does not read), which a clean-up inside the chunks' generator missed.
    """

    def __init__(
        self, content: AsyncIterator[bytes], send_timeout: float, release: Callable[[], Awaitable[None]], **kwargs
    ):
        super().__init__(content, **kwargs)
        self.send_timeout = send_timeout
        self.release = release

    async def __call__(self, scope, receive, send) -> None:
        async def timed_send(message) -> None:
            try:
                async with asyncio.timeout(self.send_timeout):
                    await send(message)
            except TimeoutError:
                raise _SendTimedOut() from None

        try:
            await super().__call__(scope, receive, timed_send)
        except _SendTimedOut:
            log.warning(
                "the client took none of the answer for %.0f s (http_send_timeout): the answer ends here",
                self.send_timeout,
            )
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()
                await self.release()


class _SendTimedOut(Exception):
    pass


def _unframed(chunk: bytes) -> bytes:
    return chunk


def _response_encoder(spec: RequestSpec | None) -> ResponseEncoder | None:
    stages = []
    if spec is not None and spec.native_compression is not None:
        stages.append(BlockEncoder(spec.native_compression, spec.zstd_level))
    if spec is not None and spec.response_encoding:
        stages.append(Encoder(spec.response_encoding, spec.compression_level))
    return ResponseEncoder(stages) if stages else None


async def encoded(chunks: AsyncIterator[bytes], spec: RequestSpec) -> AsyncIterator[bytes]:
    encoder = _response_encoder(spec)
    async with contextlib.aclosing(chunks):  # closed with this one: its clean-up runs at once
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


def request_summary(spec: RequestSpec, result, stream: ResultStream | None = None, extra: dict | None = None) -> dict:
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


def summary_header(summary: dict) -> str:
    # ClickHouse writes every figure as a JSON string.
    return "{" + ",".join(f'"{key}":"{int(value)}"' for key, value in summary.items()) + "}"
