"""`analytics clickhouse`: the embedded ClickHouse alone."""

from __future__ import annotations

from pathlib import Path

import click

from analytics.extras import requires
from analytics.settings import configure_logging, load_settings
from core.settings.clickhouse import EmbeddedClickHouseSettings


@click.command()
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="chDB data directory (ANALYTICS_CLICKHOUSE_DATA_DIR)."
)
@click.option("--http-port", type=int, help="HTTP port (ANALYTICS_CLICKHOUSE_HTTP_PORT, default 8123).")
@click.option("--host", help="Listen address (ANALYTICS_CLICKHOUSE_HOST, default 127.0.0.1).")
@click.option("--user", help="User name clients must give (ANALYTICS_CLICKHOUSE_USER, default 'default').")
@click.option("--password", help="Password clients must give (ANALYTICS_CLICKHOUSE_PASSWORD, default none).")
@click.option(
    "--allowed-networks",
    help="Addresses and CIDR networks, comma-separated, that are served; loopback always "
    "(ANALYTICS_CLICKHOUSE_ALLOWED_NETWORKS, default every address).",
)
@click.option(
    "--allow-file-access",
    is_flag=True,
    default=None,
    help="Let clients' SQL reach the server's files and network: file(), url(), INTO OUTFILE... "
    "(ANALYTICS_CLICKHOUSE_ALLOW_FILE_ACCESS, default off).",
)
@click.option(
    "--async-insert",
    is_flag=True,
    default=None,
    help="Join small inserts from every sender unless a request says async_insert=0, as async_insert=1 in a "
    "ClickHouse server's default profile does (ANALYTICS_CLICKHOUSE_ASYNC_INSERT, default off).",
)
def clickhouse(data_dir, http_port, host, user, password, allowed_networks, allow_file_access, async_insert) -> None:
    """Run the embedded ClickHouse (chDB behind the ClickHouse HTTP interface) in the foreground."""
    settings = load_settings(
        clickhouse_data_dir=data_dir,
        clickhouse_http_port=http_port,
        clickhouse_host=host,
        clickhouse_user=user,
        clickhouse_password=password,
        clickhouse_allowed_networks=allowed_networks,
        clickhouse_allow_file_access=allow_file_access,
        clickhouse_async_insert=async_insert,
    )
    configure_logging(settings)
    with requires("embedded", "clickhouse"):
        from embedded.data_lock import DataDirectoryError
        from embedded.server import CannotListen, serve_settings

    try:
        serve_settings(settings.slice(EmbeddedClickHouseSettings))
    except (DataDirectoryError, CannotListen) as error:
        raise click.ClickException(str(error)) from None
