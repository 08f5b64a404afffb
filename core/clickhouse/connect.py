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


def no_answer(connection: ClickHouseConnection) -> str | None:
    """Why ClickHouse gives no answer now (refused, timed out...), or None when it answers: after a
    failure, whether ClickHouse was out of reach (clickhouse-connect and dbt each say it in their words)."""
    from core.clickhouse.http import HttpClient, NoAnswer, ServerError

    client = HttpClient(connection.url, connection.user, connection.password, connection.secure)
    try:
        client.post({}, b"SELECT 1")
    except NoAnswer as error:
        return error.cause
    except ServerError:
        return None  # it answers: the failure's own error says what went wrong
    finally:
        client.close()
    return None
