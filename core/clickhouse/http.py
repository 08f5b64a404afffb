"""The thin ClickHouse HTTP client: POST a statement (and a body), get the answer's bytes or an error.

It owns everything about the wire: the URL and its credentials (X-ClickHouse-User/-Key; HTTP Basic
when they go beyond ASCII), one pooled connection per thread (urllib3, no retries of its own),
timeouts, and telling the kinds of failure apart: no answer (unreachable, the connection dropped,
no answer in time) from an answer with ClickHouse's exception (HTTP status and code). Callers
decide what each means to them.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlencode, urlsplit

import urllib3

from core.backend import PerThread
from core.ports import url_host

_CODE_IN_BODY = re.compile(rb"Code: (\d+)\.")


# urllib3's words around the cause: "HTTPConnection(host='h', port=1): Failed to establish a new
# connection: [Errno 111] Connection refused".
_URLLIB3_WORDS = re.compile(r"^HTTPS?Connection\(.*?\): (Failed to establish a new connection: )?")


class NoAnswer(Exception):
    """ClickHouse gave no answer: the message says which (unreachable, dropped, timed out) and why."""

    @property
    def cause(self) -> str:
        """Why, without urllib3's words around it: `[Errno 111] Connection refused`."""
        return _URLLIB3_WORDS.sub("", str(self))


class Unreachable(NoAnswer):
    """No connection could be made (refused, no route, unknown host)."""


class ConnectionDropped(NoAnswer):
    """The connection broke before the answer came (a pooled connection the server had closed, say)."""


class NoAnswerInTime(NoAnswer):
    """The connection or the answer took longer than the timeout."""


class ServerError(Exception):
    """ClickHouse answered with an error: HTTP status, ClickHouse's exception code (None if none) and text."""

    def __init__(self, status: int, code: int | None, text: str):
        super().__init__(text)
        self.status = status
        self.code = code
        self.text = text


def credential_headers(user: str, key: str) -> dict[str, str]:
    """X-ClickHouse-User and -Key; credentials beyond ASCII as HTTP Basic instead, their UTF-8 in
    base64, which ClickHouse and the embedded server read alike. A header's value goes out as
    Latin-1: such a user or password raised UnicodeEncodeError on every request (an SDK sink lost
    every event), or was not the UTF-8 the server compares."""
    if user.isascii() and key.isascii():
        return {"X-ClickHouse-User": user, **({"X-ClickHouse-Key": key} if key else {})}
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode("ascii")}


class HttpClient:
    """One ClickHouse reached over HTTP(S); usable from many threads, each with a connection of its own."""

    def __init__(
        self,
        url: str,
        user: str = "default",
        password: str = "",
        secure: bool = False,
        timeout: urllib3.Timeout | None = None,
    ):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the ClickHouse URL {url!r} is not http(s)://HOST[:PORT]")
        self.secure = parts.scheme == "https" or secure
        self.host = parts.hostname
        self.port = parts.port or (8443 if self.secure else 8123)
        scheme = "https" if self.secure else "http"
        self.url = f"{scheme}://{url_host(self.host)}:{self.port}"
        self.description = f"ClickHouse at {self.url}"
        self._path = parts.path.rstrip("/") + "/"
        self._timeout = timeout or urllib3.Timeout(connect=5.0, read=300.0)
        self._headers = credential_headers(
            unquote(parts.username) if parts.username else user, unquote(parts.password) if parts.password else password
        )
        self._pools: PerThread[urllib3.HTTPConnectionPool] = PerThread(self._new_pool, lambda pool: pool.close())

    def _new_pool(self) -> urllib3.HTTPConnectionPool:
        pool_class = urllib3.HTTPSConnectionPool if self.secure else urllib3.HTTPConnectionPool
        return pool_class(self.host, self.port, maxsize=1, block=False, retries=False)

    def post(
        self,
        params: dict[str, str],
        body: bytes,
        timeout: urllib3.Timeout | None = None,
        resend_if_dropped: bool = False,
    ) -> bytes:
        """POST ``body`` with ``params`` in the URL; the answer's bytes, or NoAnswer / ServerError.

        ``resend_if_dropped``: a statement safe to run twice (a SELECT) is sent once more on a
        fresh connection when the pooled one turns out dropped.
        """
        return self._request("POST", self._path + "?" + urlencode(params), body, timeout, resend_if_dropped)

    def ping(self, timeout: urllib3.Timeout) -> None:
        """GET /ping: whether the server answers at all (NoAnswer or ServerError if not)."""
        self._request("GET", self._path + "ping", None, timeout, resend_if_dropped=True)

    def _request(
        self, method: str, path: str, body: bytes | None, timeout: urllib3.Timeout | None, resend_if_dropped: bool
    ) -> bytes:
        for attempt in (1, 2):
            try:
                response = self._pools.get().urlopen(
                    method, path, body=body, headers=self._headers, timeout=timeout or self._timeout
                )
                break
            except urllib3.exceptions.ProtocolError as error:
                if attempt == 2 or not resend_if_dropped:
                    raise ConnectionDropped(str(error)) from None
            # NewConnectionError (refused, no route) is a ConnectTimeoutError in urllib3 2: test it first.
            except urllib3.exceptions.NewConnectionError as error:
                raise Unreachable(str(error)) from None
            except urllib3.exceptions.TimeoutError as error:
                raise NoAnswerInTime(str(error)) from None
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise NoAnswer(str(error)) from None
        if response.status != 200:
            raise ServerError(response.status, _exception_code(response), response.data.decode(errors="replace"))
        return response.data

    def close(self) -> None:
        self._pools.close()


def _exception_code(response: urllib3.BaseHTTPResponse) -> int | None:
    header = response.headers.get("X-ClickHouse-Exception-Code", "").strip()
    if header.isdigit():
        return int(header)
    match = _CODE_IN_BODY.search(response.data)
    return int(match.group(1)) if match else None
