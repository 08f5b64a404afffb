"""HttpBackend: the gRPC service's queries against any ClickHouse over its HTTP interface."""

from __future__ import annotations

import urllib3

from core.backend import (
    FORMAT,
    SHORTEST_LIMIT,
    VALID_UTF8,
    QueryFailed,
    QueryTimedOut,
    StoreBusy,
    StoreUnreachable,
    Value,
    escape_value,
    parse_rows,
)
from core.clickhouse.http import ConnectionDropped, HttpClient, NoAnswer, NoAnswerInTime, ServerError, Unreachable
from core.errors import Code

# What a proxy or load balancer in front of ClickHouse (nginx, Envoy, HAProxy, a cloud's) answers
# when nothing behind it answers: Bad Gateway, Service Unavailable, Gateway Timeout.
GATEWAY_STATUSES = frozenset({502, 503, 504})


class HttpBackend:
    """A ClickHouse server (or `analytics clickhouse`) over its HTTP interface."""

    def __init__(self, url: str, user: str = "default", password: str = "", secure: bool = False):
        self._client = HttpClient(url, user, password, secure)
        self.description = self._client.description
        self.writes = None  # others write to this ClickHouse unseen

    def rows(self, sql: str, params: dict[str, Value], timeout: float) -> list[list]:
        limit = max(timeout, SHORTEST_LIMIT)
        fields = {"default_format": FORMAT, "max_execution_time": f"{limit:.3f}", VALID_UTF8: "1"}
        fields.update({f"param_{name}": escape_value(value) for name, value in params.items()})
        description = self.description
        try:
            body = self._client.post(
                fields,
                sql.encode(),
                # ClickHouse stops the query itself at max_execution_time; the socket waits a bit longer.
                timeout=urllib3.Timeout(connect=min(limit, 5.0), read=limit + 1.0),
                resend_if_dropped=True,  # a SELECT is safe to send again
            )
        except ConnectionDropped as error:
            raise StoreUnreachable(f"{description} dropped the connection: {error}") from None
        except Unreachable as error:
            raise StoreUnreachable(f"{description} is unreachable: {error}") from None
        except NoAnswerInTime as error:
            raise QueryTimedOut(f"{description} did not answer in time: {error}") from None
        except NoAnswer as error:
            raise StoreUnreachable(f"{description} could not be asked: {error}") from None
        except ServerError as error:
            text = error.text.strip()
            if error.code is None and error.status in GATEWAY_STATUSES:
                # Not ClickHouse's answer: a load balancer's in front of it, with nothing behind that answers.
                raise StoreUnreachable(f"{description} answered HTTP {error.status}: {text[:200]}") from None
            if error.code == Code.TIMEOUT_EXCEEDED:
                raise QueryTimedOut(text) from None
            if error.code == Code.TOO_MANY_SIMULTANEOUS_QUERIES:
                raise StoreBusy(f"{description} answered HTTP {error.status}: {text}") from None
            raise QueryFailed(f"{description} answered HTTP {error.status}: {text}") from None
        return parse_rows(body)

    def reachable(self, timeout: float) -> None:
        """StoreUnreachable unless ClickHouse answers its /ping (QueryTimedOut when it is slow to)."""
        try:
            self._client.ping(urllib3.Timeout(connect=timeout, read=timeout))
        except NoAnswerInTime as error:
            raise QueryTimedOut(f"{self.description} did not answer its ping in time: {error}") from None
        except (NoAnswer, ServerError) as error:
            raise StoreUnreachable(f"{self.description} does not answer its ping: {error}") from None

    def close(self) -> None:
        self._client.close()
