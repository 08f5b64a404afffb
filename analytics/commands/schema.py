"""`analytics migrate` and `analytics backfill`: building the schema with dbt, and repairing days."""

from __future__ import annotations

import datetime as dt
import re

import click

from analytics.extras import check_installed, requires
from analytics.reach import answering, dbt_can_write
from analytics.settings import load_settings
from core.settings.schema import SchemaSettings


@click.command()
@click.option("--clickhouse-url", help="ClickHouse to build the schema in (ANALYTICS_CLICKHOUSE_URL).")
@click.option("--target", type=click.Choice(["embedded", "server"]), help="dbt target (ANALYTICS_DBT_TARGET).")
def migrate(clickhouse_url, target) -> None:
    """Build the analytics schema with dbt (dbt build): safe to run again at any time."""
    settings = load_settings(clickhouse_url=clickhouse_url, dbt_target=target)
    _cluster_needs_server(settings, " or --target server")
    with requires("dbt", "migrate"):
        check_installed("dbt.version")  # dbt runs as a child process; say so here if it is missing

        from operations.migrate import migrate as run_migrate

    result = run_migrate(answering(dbt_can_write(settings.slice(SchemaSettings))))
    if result.returncode != 0:
        raise click.ClickException(f"dbt build failed (exit {result.returncode}); see the output above")


def _cluster_needs_server(settings, flag: str = "") -> None:
    """The embedded target has no cluster: dbt built part of the schema, then failed on every replicated table."""
    if settings.cluster and settings.dbt_target == "embedded":
        raise click.UsageError(
            f"ANALYTICS_CLUSTER={settings.cluster} needs the server target (ANALYTICS_DBT_TARGET=server{flag}): "
            "the embedded target has no cluster; unset ANALYTICS_CLUSTER for one server"
        )


class Day(click.ParamType):
    """A day written YYYY-MM-DD; one of that shape that is no day on the calendar says why."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx) -> dt.date:
        if isinstance(value, dt.date):
            return value
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            self.fail(f"{value!r} is not a day written YYYY-MM-DD", param, ctx)
        try:
            return dt.date.fromisoformat(value)
        except ValueError as error:
            self.fail(f"{value!r} is not a day on the calendar: {error}", param, ctx)


@click.command()
@click.option(
    "--day",
    "days",
    multiple=True,
    required=True,
    type=Day(),
    help="A day (UTC) to rebuild, YYYY-MM-DD; repeat for more days.",
)
@click.option("--clickhouse-url", help="ClickHouse to repair (ANALYTICS_CLICKHOUSE_URL).")
def backfill(days, clickhouse_url) -> None:
    """Rebuild the aggregates of the given days from the deduplicated raw history.

    Each day's workflow_daily and job_duration_daily rows are recomputed (counters corrected by
    delta rows, duration digests replaced), and workflow_totals and job_log_totals get delta rows
    where they were off. Safe to repeat: a second run changes nothing.
    """
    settings = load_settings(clickhouse_url=clickhouse_url)
    _cluster_needs_server(settings)
    with requires("dbt", "backfill"):
        check_installed("dbt.version")  # dbt runs as a child process; say so here if it is missing

        from operations.backfill import BackfillFailed, checked_days, rebuild_days

    try:
        checked_days(days)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--day'") from None
    try:
        summary = rebuild_days(answering(dbt_can_write(settings.slice(SchemaSettings))), list(days))
    except BackfillFailed as error:
        raise click.ClickException(str(error)) from None
    for day, rows in sorted(summary.rows_by_day.items()):
        click.echo(f"{day}: rebuilt, {rows} workflow_daily rows")
    click.echo(f"workflow_totals: {summary.workflow_totals_corrected} workflows corrected")
    click.echo(f"workflow_daily: {summary.workflow_daily_corrected} workflow days corrected")
    click.echo(f"job_log_totals: {summary.job_log_totals_corrected} jobs corrected")
