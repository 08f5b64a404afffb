"""ChdbBackend: the gRPC service's queries on the chDB of this process (inside `analytics up`).

The wiring hands it to the service (core.backend.QueryBackend); the service never imports it.
"""

from __future__ import annotations

from core.backend import (
    FORMAT,
    SHORTEST_LIMIT,
    VALID_UTF8,
    PerThread,
    QueryFailed,
    QueryTimedOut,
    Value,
    escape_value,
    parse_rows,
)
from core.errors import Code
from embedded.engine import Connection, Engine
from embedded.errors import ClickHouseError


class ChdbBackend:
    """chDB of this process, through the engine's connections."""

    def __init__(self, engine: Engine):
        self.description = f"in-process chDB at {engine.data_dir}"
        self.writes = engine.writes
        # Connections of its own, not the HTTP front's pooled ones, which may carry a client's SETs.
        self._connections: PerThread[Connection] = PerThread(engine.new_connection, Connection.close)

    def rows(self, sql: str, params: dict[str, Value], timeout: float) -> list[list]:
        # SET would change the connection for later queries; a SETTINGS clause applies to this one only.
        limited = f"{sql}\nSETTINGS max_execution_time = {max(timeout, SHORTEST_LIMIT):.3f}, {VALID_UTF8} = 1"
        values = {name: escape_value(value) for name, value in params.items()}
        try:
            result = self._connections.get().query(limited, FORMAT, values)
        except ClickHouseError as error:
            if error.code == Code.TIMEOUT_EXCEEDED:
                raise QueryTimedOut(error.message) from None
            raise QueryFailed(f"{error.name or error.code}: {error.message}") from None
        return parse_rows(result.bytes())

    def reachable(self, timeout: float) -> None:
        """chDB runs in this process: always within reach."""

    def close(self) -> None:
        self._connections.close()
