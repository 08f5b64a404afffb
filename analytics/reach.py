"""Before a command works on a ClickHouse: that it answers, or one line saying why not."""

from __future__ import annotations

import click

from core.clickhouse.connect import probe
from core.clickhouse.http import NoAnswer, ServerError
from core.settings.schema import SchemaSettings


def answering(settings: SchemaSettings) -> SchemaSettings:
    """``settings`` once their ClickHouse answers; else one line naming it and why, at once.

    dbt would start (seconds of imports) and then print a connection pool's traceback in words.
    """
    connection = settings.clickhouse_connection
    error = probe(connection)
    if isinstance(error, NoAnswer):
        raise click.ClickException(
            f"cannot reach ClickHouse at {connection.url}: {error.cause} (start it with `analytics up` or"
            " `analytics clickhouse`, or give --clickhouse-url / ANALYTICS_CLICKHOUSE_URL)"
        )
    if isinstance(error, ServerError):
        raise click.ClickException(f"ClickHouse at {connection.url} refused: {error.text.strip()[:500]}")
    return settings


def dbt_can_write(settings: SchemaSettings) -> SchemaSettings:
    """``settings`` once dbt can keep its files (target, logs) under the data directory; else one
    line naming it. dbt said only its exit status, with nothing above it."""
    from operations.dbt import default_target_path

    folder = default_target_path(settings).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".writable").touch()
        (folder / ".writable").unlink()
    except OSError as error:
        raise click.ClickException(
            f"cannot keep dbt's files in {folder} (under ANALYTICS_DATA_DIR): {error.strerror or error}"
        ) from None
    return settings
