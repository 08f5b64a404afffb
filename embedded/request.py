"""What one HTTP request asks of the engine, read as ClickHouse's HTTPHandler reads it.

URL parameters, the multipart form, the ``X-ClickHouse-*`` request headers and the body's two
layers of compression (``Content-Encoding`` outside, ClickHouse's own blocks with ``decompress=1``
inside). Precedence follows the server: ``X-ClickHouse-Database`` over ``database``,
``X-ClickHouse-Format`` over ``default_format``; credentials from the ``X-ClickHouse-User`` /
``-Key`` / ``-Quota`` headers, or HTTP Basic, or the URL, and never from two of them at once.
ClickHouse has no per-setting request headers: settings travel in the URL.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from starlette.exceptions import HTTPException
from starlette.requests import Request

from core.errors import Code
from embedded import framing, native_compression
from embedded.codecs import Decoder, choose_response_encoding
from embedded.errors import ClickHouseError
from embedded.readonly import level as readonly_level

# URL parameters the front itself consumes; every other one (except param_*) is a setting.
HTTP_PARAMETERS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "user",
        "password",
        "quota_key",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "stacktrace",
        "role",
        "client_protocol_version",
        "close_session",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "enable_http_compression",
        "http_zlib_compression_level",
        "add_http_cors_header",
        "http_response_buffer_size",
        "http_wait_end_of_query",
        "cancel_http_readonly_queries_on_client_close",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)
_DEFAULT_MAX_QUERY_SIZE = 262_144
_TRUE = ("1", "true")


@dataclass
class RequestSpec:
    """What one HTTP request asks of the engine, parsed from its URL, headers and form."""

    method: str
    user: str
    query_id: str
    query_param: str
    database: str | None
    default_format: str
    settings: dict[str, str]
    readonly: str | None  # "1" or "2"; "2" for any method but POST that asked for none (embedded.readonly)
    params: dict[str, str]
    session_id: str | None
    session_timeout: float
    session_check: bool
    wait_end_of_query: bool
    response_encoding: str | None
    compression_level: int | None
    max_query_size: int
    # compress=1: the response in ClickHouse's compressed blocks, with this method byte.
    native_compression: int | None = None
    zstd_level: int = 1
    # client_protocol_version: the Native revision the client reads (0: plain Native).
    client_protocol_version: int = 0
    body_in_form: bool = False  # multipart/form-data: the body was the form, there is no data stream
    # How long an answer may wait for the client to take more of it (http_send_timeout).
    send_timeout: float = 30.0
    # add_http_cors_header=1 from a page of another origin: answers say any origin may read them.
    cors: bool = False
    # framing_output_format: the answer as server-sent events (embedded.framing), or None.
    framing: str | None = None
    # The log_comment a statement runs with, so KILL QUERY finds it by the client's query_id or
    # when the client goes away (embedded.kill_marks), and how to know it has. Every statement
    # carries it when the client named its query or asked for a read-only statement to be cancelled
    # when it goes (cancel_http_readonly_queries_on_client_close: `cancel_on_close`); else only one
    # whose whole result is built before any of it is sent (setting it costs a SET a request).
    kill_marker: str | None = None
    client_gone: Callable[[], Awaitable[None]] | None = None
    mark_every_statement: bool = False
    cancel_on_close: bool = False
    started_ns: int = field(default_factory=time.perf_counter_ns)
    # The session_timezone the statement runs with (X-ClickHouse-Timezone), when not the server's.
    timezone: str | None = None
    close_session: bool = False  # close_session=1: the session ends with this request, as on a server


async def parse_request(
    request: Request, user: str, password: str, max_session_timeout: float, default_session_timeout: float
) -> RequestSpec:
    """The request's RequestSpec; raises ClickHouseError for what a server would refuse."""
    url = dict(request.query_params)
    form_query = None
    in_form = request.headers.get("content-type", "").startswith("multipart/form-data")
    if in_form:
        try:
            form = await request.form()
        except HTTPException as error:  # Starlette's words for a body that is not a form
            raise ClickHouseError.of(
                Code.INCORRECT_DATA, f"Cannot read the multipart/form-data body: {error.detail}"
            ) from None
        for name, value in form.multi_items():
            if not isinstance(value, str):
                raise ClickHouseError.of(
                    Code.NOT_IMPLEMENTED, "External data tables are not supported by the embedded server"
                )
            if name == "query":
                form_query = value
            elif name.startswith("param_"):
                url[name] = value
    given_user, given_password = credentials(request, url)
    authenticate(given_user, given_password, user, password)

    settings = {
        name: value for name, value in url.items() if name not in HTTP_PARAMETERS and not name.startswith("param_")
    }
    readonly = settings.pop("readonly", None)
    framed = framing.requested(settings.pop(framing.SETTING, None))
    max_query_size = _int_setting(settings, "max_query_size", _DEFAULT_MAX_QUERY_SIZE)
    if "max_query_size" in settings:
        # The front holds the statement to the asked size itself; chDB gets at least its default, so
        # the front's own short statements on the connection (its SETs and their undoing) never
        # fall under a tiny limit and leave the connection, or the session, refusing everything.
        settings["max_query_size"] = str(max(max_query_size, _DEFAULT_MAX_QUERY_SIZE))
    response_encoding = None
    if url.get("enable_http_compression") in _TRUE:
        response_encoding = choose_response_encoding(request.headers.get("accept-encoding", ""))
    level = url.get("http_zlib_compression_level")
    native = None
    if url.get("compress") in _TRUE:
        native = native_compression.method_byte(settings.get("network_compression_method", "lz4"))
    query_param = url.get("query", "")
    if form_query is not None:
        query_param = form_query + ("\n" + query_param if query_param else "")
    headers = request.headers
    named = url.get("query_id") or _utf8(headers.get("x-clickhouse-query-id", ""))
    query_id = _without_control_characters(named) or str(uuid.uuid4())
    cancel = url.get("cancel_http_readonly_queries_on_client_close") in _TRUE
    marked = "log_comment" not in settings  # a client's own comment stays
    return RequestSpec(
        method=request.method,
        user=given_user,
        query_id=query_id,
        query_param=query_param,
        database=headers.get("x-clickhouse-database") or url.get("database") or None,
        default_format=headers.get("x-clickhouse-format") or url.get("default_format") or "TabSeparated",
        settings=settings,
        readonly=readonly_level(request.method, readonly),
        params={name[len("param_") :]: value for name, value in url.items() if name.startswith("param_")},
        session_id=url.get("session_id") or None,
        session_timeout=session_timeout(url.get("session_timeout"), default_session_timeout, max_session_timeout),
        session_check=url.get("session_check") in _TRUE,
        close_session=url.get("close_session") in _TRUE,
        wait_end_of_query=url.get("wait_end_of_query") in _TRUE,
        response_encoding=response_encoding,
        compression_level=int(level) if level and level.isdigit() else None,
        max_query_size=max_query_size,
        native_compression=native,
        zstd_level=_int_setting(settings, "network_zstd_compression_level", 1),
        client_protocol_version=_int_setting(url, "client_protocol_version", 0),
        body_in_form=in_form,  # the form took the whole body, with or without a query in it
        cors=url.get("add_http_cors_header") in _TRUE and bool(headers.get("origin")),
        framing=framed,
        kill_marker=f"query_id: {query_id}" if marked else None,
        client_gone=partial(_disconnected, request.receive) if marked else None,
        mark_every_statement=cancel or bool(named),
        cancel_on_close=cancel,
    )


async def _disconnected(receive: Callable[[], Awaitable[dict]]) -> None:
    """Returns when the client's connection closes (the request's body has been read by then)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _without_control_characters(query_id: str) -> str:
    """A client's query id as a server keeps it: without ASCII control characters, which would end
    the X-ClickHouse-Query-Id header it is sent back in (a line break in it left the client no answer)."""
    return "".join(char for char in query_id if not (ord(char) < 32 or ord(char) == 127))


def _int_setting(values: dict[str, str], name: str, default: int) -> int:
    raw = values.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ClickHouseError.of(
            Code.CANNOT_PARSE_NUMBER, f"Cannot parse number from '{raw}' (parameter '{name}')"
        ) from None


def credentials(request: Request, url: dict[str, str]) -> tuple[str, str]:
    """ClickHouse's three ways to pass credentials: X-ClickHouse-* headers, Basic auth, URL; one at a time."""
    headers = request.headers
    header_user = _utf8(headers.get("x-clickhouse-user", ""))
    header_key = _utf8(headers.get("x-clickhouse-key", ""))
    header_quota = headers.get("x-clickhouse-quota", "")
    authorization = headers.get("authorization", "")
    if authorization == "never":  # a browser page's way (/play's) to say "no credentials here: never prompt"
        authorization = ""
    in_url = "user" in url or "password" in url or "quota_key" in url
    if header_user or header_key or header_quota:
        if authorization:
            raise _invalid(
                "it is not allowed to use X-ClickHouse HTTP headers and Authorization HTTP header simultaneously"
            )
        if in_url:
            raise _invalid(
                "it is not allowed to use X-ClickHouse HTTP headers and authentication via parameters simultaneously"
            )
        return header_user or "default", header_key
    if authorization:
        if in_url:
            raise _invalid(
                "it is not allowed to use Authorization HTTP header and authentication via parameters simultaneously"
            )
        scheme, _, info = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise _invalid(f"'{scheme}' HTTP Authorization scheme is not supported")
        try:
            decoded = base64.b64decode(info.strip()).decode()
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        user, _, password = decoded.partition(":")
        return user or "default", password
    return url.get("user") or "default", url.get("password", "")


_MIXED = "it is not allowed to use {} and {} simultaneously"


def _utf8(value: str) -> str:
    """A header's value as ClickHouse reads it, its bytes as UTF-8 (Starlette hands them over as
    Latin-1): a password beyond ASCII sent in X-ClickHouse-Key, as curl sends it, was refused."""
    return value.encode("latin-1").decode("utf-8", errors="replace")


def _invalid(reason: str) -> ClickHouseError:
    return ClickHouseError.of(Code.AUTHENTICATION_FAILED, f"Invalid authentication: {reason}")


def authenticate(user: str, password: str, expected_user: str, expected_password: str) -> None:
    if user != expected_user or not hmac.compare_digest(password.encode(), expected_password.encode()):
        raise ClickHouseError.of(
            Code.AUTHENTICATION_FAILED,
            f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
        )


def session_timeout(raw: str | None, default: float, maximum: float) -> float:
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= maximum:
        raise ClickHouseError.of(Code.INVALID_SESSION_TIMEOUT, f"Invalid session timeout: '{raw}', max: {maximum:g}")
    return value


def timeout_setting(settings: dict[str, str], name: str, default: float) -> float:
    """A timeout setting in seconds (http_receive_timeout, http_send_timeout) from the request's
    settings, else the server's default."""
    given = settings.get(name)
    if given is None:
        return default
    try:
        seconds = float(given)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ClickHouseError.of(
            Code.CANNOT_PARSE_NUMBER, f"{name} must be a positive number of seconds, not {given!r}"
        )
    return seconds


class BodyReader:
    """The request body, decoded per Content-Encoding and then (``decompress=1``) ClickHouse's blocks."""

    def __init__(self, request: Request, empty: bool = False, timeout: float | None = None):
        self._timeout = timeout  # seconds to wait for the next bytes (http_receive_timeout)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        self._decoder = Decoder(encoding) if encoding and encoding != "identity" and not empty else None
        url = request.query_params
        self._blocks = None
        if url.get("decompress") in _TRUE and not empty:
            verify = url.get("http_native_compression_disable_checksumming_on_decompress") not in _TRUE
            self._blocks = native_compression.BlockDecoder(verify_checksums=verify)
        self._chunks = request.stream()
        self.exhausted = empty

    async def read(self) -> bytes | None:
        """The next non-empty chunk, or None at the end of the body."""
        while not self.exhausted:
            # What the decoder holds of the input already received comes first, a piece at a time.
            chunk = self._decoder.more() if self._decoder is not None else b""
            if not chunk:
                try:
                    async with asyncio.timeout(self._timeout):
                        chunk = await self._chunks.__anext__()
                except TimeoutError:
                    raise ClickHouseError.of(
                        Code.SOCKET_TIMEOUT,
                        f"Timeout exceeded while reading from socket ({self._timeout * 1000:.0f} ms): the request"
                        " body stopped arriving (http_receive_timeout)",
                    ) from None
                except StopAsyncIteration:
                    self.exhausted = True
                    if self._decoder is not None:
                        self._decoder.finish()
                    if self._blocks is not None:
                        self._blocks.finish()
                    return None
                if self._decoder is not None:
                    chunk = self._decoder.feed(chunk)
            if self._blocks is not None and chunk:
                chunk = self._blocks.feed(chunk)
            if chunk:
                return chunk
        return None
