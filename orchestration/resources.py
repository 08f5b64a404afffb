"""The ClickHouse resource: clickhouse-connect over HTTP, the protocol the embedded server speaks."""

import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg

from core.clickhouse import connect
from core.settings.clickhouse import ClickHouseSettings


class ClickHouse:
    """Queries against the configured ClickHouse; each call opens its own client (one per thread).

    A ClickHouse out of reach fails the step as a Failure naming it and why, where clickhouse-connect's
    words were "Max retries exceeded with url: /?query_id=..." and a stack trace.
    """

    def __init__(self, settings: ClickHouseSettings):
        self._connection = settings.clickhouse_connection

    def client(self):
        return connect.client(self._connection)

    @contextlib.contextmanager
    def _session(self) -> Iterator:
        try:
            with connect.session(self._connection) as client:
                yield client
        except Exception:
            said = connect.unreachable(self._connection)
            if said is None:
                raise
            raise dg.Failure(description=said) from None

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The result as one dict per row."""
        with self._session() as client:
            result = client.query(sql, parameters=parameters)
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def command(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> None:
        with self._session() as client:
            client.command(sql, parameters=parameters, settings=settings)
