"""clickhouse-connect clients for a ClickHouse connection (settings' `clickhouse_connection`).

For the code that wants typed results and Python-row inserts more than the last millisecond:
dead-letter replays, Dagster's checks and jobs. clickhouse-connect is imported on first use, so
this module costs nothing to the parts that never call it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from core.ports import url_host
from core.settings.clickhouse import ClickHouseConnection


def client(connection: ClickHouseConnection, **options):
    """A clickhouse-connect client; close it after use (or use `session`)."""
    import clickhouse_connect

    return clickhouse_connect.get_client(
        host=url_host(connection.host),  # clickhouse-connect writes it into a URL as it is
        port=connection.port,
        username=connection.user,
        password=connection.password,
        secure=connection.secure,
        **options,
    )


@contextlib.contextmanager
def session(connection: ClickHouseConnection, **options) -> Iterator:
    """A client for the length of a `with` block."""
    opened = client(connection, **options)
    try:
        yield opened
    finally:
        opened.close()


def probe(connection: ClickHouseConnection) -> Exception | None:
    """Ask ClickHouse `SELECT 1`: None when it answers, else what went wrong (a NoAnswer when it is
    out of reach: refused, timed out...; a ServerError when it refused the query)."""
    from core.clickhouse.http import HttpClient, NoAnswer, ServerError

    client = HttpClient(connection.url, connection.user, connection.password, connection.secure)
    try:
        client.post({}, b"SELECT 1")
    except (NoAnswer, ServerError) as error:
        return error
    finally:
        client.close()
    return None


def unreachable(connection: ClickHouseConnection) -> str | None:
    """`cannot reach ClickHouse at URL: why` when it gives no answer now, or None when it answers:
    after a failure, whether ClickHouse was out of reach (clickhouse-connect and dbt each say it in
    their words)."""
    from core.clickhouse.http import NoAnswer

    error = probe(connection)
    return f"cannot reach ClickHouse at {connection.url}: {error.cause}" if isinstance(error, NoAnswer) else None
