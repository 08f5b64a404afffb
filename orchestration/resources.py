"""The ClickHouse resource: clickhouse-connect over HTTP, the protocol the embedded server speaks."""

from typing import Any

import clickhouse_connect

from analytics.settings import Settings


class ClickHouse:
    """Queries against the configured ClickHouse; each call opens its own client (one per thread)."""

    def __init__(self, settings: Settings):
        self._connection = settings.clickhouse_connection

    def client(self):
        connection = self._connection
        return clickhouse_connect.get_client(
            host=connection.host,
            port=connection.port,
            username=connection.user,
            password=connection.password,
            secure=connection.secure,
        )

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The result as one dict per row."""
        client = self.client()
        try:
            result = client.query(sql, parameters=parameters)
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
        finally:
            client.close()

    def command(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> None:
        client = self.client()
        try:
            client.command(sql, parameters=parameters, settings=settings)
        finally:
            client.close()
