"""`analytics dagster`: the Dagster webserver and daemon alone."""

from __future__ import annotations

import signal
import time

import click

from analytics.extras import check_installed, requires
from analytics.settings import configure_logging, load_settings


class _Stop(Exception):
    """SIGTERM or Ctrl-C arrived."""


def _raise_stop(signum, frame) -> None:
    raise _Stop()


@click.command()
@click.option("--port", type=int, help="Port of the Dagster UI (ANALYTICS_DAGSTER_PORT, default 3000).")
@click.option("--host", help="Address the UI listens on (ANALYTICS_DAGSTER_HOST, default 127.0.0.1).")
@click.option("--clickhouse-url", help="ClickHouse the assets and checks use (ANALYTICS_CLICKHOUSE_URL).")
def dagster(port, host, clickhouse_url) -> None:
    """Run the Dagster webserver and daemon alone, in the foreground until Ctrl-C or SIGTERM.

    They orchestrate the configured ClickHouse: the embedded one on ANALYTICS_CLICKHOUSE_HTTP_PORT,
    or the server at ANALYTICS_CLICKHOUSE_URL.
    """
    settings = load_settings(dagster_port=port, dagster_host=host, clickhouse_url=clickhouse_url)
    configure_logging(settings)
    with requires("orchestration", "dagster"):
        check_installed("dagster", "dagster_webserver", "dagster_dbt")  # they run as child processes

    from analytics.dagster_service import DagsterService, DagsterStartError

    service = DagsterService(settings)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        service.wait_until_serving()
        while service.running():
            time.sleep(0.5)
        raise click.ClickException(f"the Dagster webserver or daemon exited; see the logs in {service.home}")
    except _Stop:
        pass
    except DagsterStartError as error:
        raise click.ClickException(str(error)) from None
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
