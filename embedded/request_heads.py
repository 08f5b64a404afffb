"""uvicorn's httptools protocol with limits on a request's head, as ClickHouse's HTTP server keeps.

httptools buffers a request line and its headers whole before the app sees any of it, and uvicorn
sets no bound on their size nor on the time they take: a client could hold a gigabyte of headers
in the server's memory, or keep a connection open for ever by sending its head a byte at a time
(slowloris), each such connection holding a file descriptor. ClickHouse bounds both
(`http_max_uri_size`, `http_max_field_value_size`, `http_receive_timeout`). Here:

- a head (the request line and every header) longer than ``MAX_HEAD_BYTES`` is answered 431;
- a URI longer than ``MAX_URI_BYTES`` (ClickHouse's `http_max_uri_size`) is answered 414. One
  longer than httptools' URL parser takes (it counts in 16 bits, and uvicorn answered such a
  request with a bare "Invalid HTTP request received.") has its path parsed and its query string
  taken as it is, so a long query sent in a GET's URL runs as on ClickHouse;
- a head that has not arrived whole ``HEAD_TIMEOUT_S`` after its first byte is answered 408, and a
  connection that sends nothing that long after it opened is closed (between requests uvicorn's
  keep-alive timeout already does it).

A refused client may still be sending: the answer is written, the sending side shut, and what
arrives is read and dropped for ``LINGER_S`` before the connection closes, so the client reads
the answer instead of a reset (a lingering close, as web servers do). A body is not a head: its
size and pace are the app's to judge (embedded/http.py).
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from core.repeated_log import RepeatedFailure

log = logging.getLogger(__name__)
# A line a minute at most, with how many refusals it did not log: a flood of bad heads is one line.
_REFUSALS = RepeatedFailure(log, "refused a request's head")

MAX_HEAD_BYTES = 2 * 1024 * 1024
MAX_URI_BYTES = 1024 * 1024  # ClickHouse's http_max_uri_size
PARSED_URL_AT_MOST = 65_535  # what httptools.parse_url takes
HEAD_TIMEOUT_S = 30.0  # ClickHouse's http_receive_timeout
LINGER_S = 2.0


class BoundedHeadProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose request heads are bounded in size and in time (module docstring).

    A head refused while the request before it is still being answered (pipelined) is answered
    once that answer is complete, so a refusal never cuts into it nor comes before it; meanwhile
    the connection is not read.
    """

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout_s = HEAD_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = False  # between a request's first byte and the end of its headers
        self._refused = False
        self._refusal_after_answer: tuple[int, str] | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._time_head()  # a connection that sends nothing is closed as well

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._stopped():
            return  # lingering, or paused until the answer under way is complete: dropped
        super().data_received(data)
        if self._in_head and not self._stopped():  # the parser holds the head so far: at most a chunk uncounted
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, f"The request line and headers exceed {self.max_head_bytes:,} bytes")

    def on_message_begin(self) -> None:
        if self._stopped():
            return
        super().on_message_begin()
        self._head_bytes, self._in_head = 0, True
        self._time_head()  # from its first byte

    def on_headers_complete(self) -> None:
        if self._stopped():
            return
        self._in_head = False
        self._stop_head_timer()
        url = self.url
        if len(url) > PARSED_URL_AT_MOST:
            # httptools' URL parser counts in 16 bits: it parses the path, the query is taken as it is.
            path, _, query = url.partition(b"?")
            if len(url) > MAX_URI_BYTES or len(path) > PARSED_URL_AT_MOST or not path.startswith(b"/"):
                self._refuse(
                    414,
                    f"The URI is longer than {MAX_URI_BYTES if len(url) > MAX_URI_BYTES else PARSED_URL_AT_MOST:,}"
                    " bytes (ClickHouse's http_max_uri_size is 1 MiB): send the query in the body of a POST",
                )
                return
            self.url = path
            super().on_headers_complete()
            self.scope["query_string"] = query.partition(b"#")[0]  # read once the app's task runs
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._stopped():
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._stopped():
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal_after_answer is not None and not self.transport.is_closing():
            self._refuse(*self._refusal_after_answer)

    def _stopped(self) -> bool:
        """Refused, or to be once the answer under way is complete: the parser's callbacks do nothing."""
        return self._refused or self._refusal_after_answer is not None

    def _answering(self) -> bool:
        """Whether a request before the head being read is still being answered."""
        return self.cycle is not None and not self.cycle.response_complete

    def _time_head(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._refused:
            return
        if self._in_head:
            self._refuse(408, f"The request line and headers did not arrive within {self.head_timeout_s:g} s")
        elif self.cycle is None:  # opened, and nothing sent since
            self.transport.close()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with ``message``, then close the connection after a lingering close;
        after the answer under way, if there is one."""
        self._in_head = False
        self._stop_head_timer()
        if self._answering():
            self._refusal_after_answer = (status, message)
            self.flow.pause_reading()
            return
        self._refused, self._refusal_after_answer = True, None
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        _REFUSALS.failed(f"{client}: {status} {message}")
        body = message.encode()
        self.transport.write(
            STATUS_LINE[status]
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)
