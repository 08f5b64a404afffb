"""The ClickHouse resource: clickhouse-connect over HTTP, the protocol the embedded server speaks."""

from typing import Any

from core.clickhouse import connect
from core.settings.clickhouse import ClickHouseSettings


class ClickHouse:
    """Queries against the configured ClickHouse; each call opens its own client (one per thread)."""

    def __init__(self, settings: ClickHouseSettings):
        self._connection = settings.clickhouse_connection

    def client(self):
        return connect.client(self._connection)

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The result as one dict per row."""
        with connect.session(self._connection) as client:
            result = client.query(sql, parameters=parameters)
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def command(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> None:
        with connect.session(self._connection) as client:
            client.command(sql, parameters=parameters, settings=settings)
