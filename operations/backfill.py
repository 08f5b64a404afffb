"""Backfill: rebuild the aggregates of chosen days from the deduplicated raw history.

The SQL is the dbt macro ``rebuild_days`` (dbt_project/macros/rebuild.sql), which shares its
recomputation with the reconciliation tests. `analytics backfill` and Dagster's
``daily_reconciliation`` asset both run it through :func:`rebuild_days`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from core.clickhouse.connect import unreachable
from core.days import FIRST_DAY, LAST_DAY, RANGE_TEXT
from core.settings.schema import SchemaSettings
from operations.dbt import run_dbt
from operations.rebuild_lock import WAIT_S, RebuildBusy, rebuild_lock

# The one line rebuild_days logs about what it did.
SUMMARY = re.compile(r"rebuild summary: (\{.*\})")


class BackfillFailed(RuntimeError):
    """dbt could not rebuild the days; the message carries the end of its output."""


class ClickHouseUnreachable(BackfillFailed):
    """ClickHouse gave no answer, before the rebuild or during it: running it again completes it."""


def not_rebuilt(said: str) -> ClickHouseUnreachable:
    """``said`` (core.clickhouse.connect.unreachable's words) and what it left of the rebuild."""
    return ClickHouseUnreachable(
        f"{said}. The days were not rebuilt, or only some of their tables (each table's corrections are "
        "one insert): a rebuild run again once ClickHouse answers completes them"
    )


@dataclass(frozen=True)
class RebuildSummary:
    rows_by_day: dict[str, int]  # rows of workflow_daily each rebuilt day now holds
    workflow_totals_corrected: int  # delta rows inserted into workflow_totals
    workflow_daily_corrected: int  # delta rows inserted into workflow_daily (one a workflow and day)
    job_log_totals_corrected: int  # delta rows inserted into job_log_totals (jobs whose log counts were off)
    output: str  # dbt's output, for logs


def checked_days(days: Iterable[dt.date]) -> list[str]:
    """The days to rebuild as YYYY-MM-DD, sorted, each once; ValueError for none, or one the
    aggregates cannot hold (its Date would wrap around onto another day)."""
    unique = set(days)
    if not unique:
        raise ValueError("name at least one day to rebuild")
    outside = sorted(day for day in unique if not FIRST_DAY <= day <= LAST_DAY)
    if outside:
        shown = ", ".join(day.isoformat() for day in outside)
        raise ValueError(f"{shown}: not one of the days the aggregates hold ({RANGE_TEXT})")
    return sorted(day.isoformat() for day in unique)


def rebuild_arguments(days: Iterable[dt.date], staging_suffix: str) -> list[str]:
    """The `dbt run-operation` arguments that rebuild these days."""
    listed = checked_days(days)
    return ["rebuild_days", "--args", json.dumps({"days": listed, "staging_suffix": staging_suffix})]


def parse_summary(output: str) -> tuple[dict[str, int], int, int, int]:
    """The rows of each rebuilt day, and the delta rows for workflow_totals, workflow_daily and job_log_totals."""
    match = SUMMARY.search(output)
    if match is None:
        raise BackfillFailed("dbt reported no rebuild summary:\n" + output[-3000:])
    summary = json.loads(match.group(1))
    return (
        summary["days"],
        summary["workflow_totals_corrected"],
        summary["workflow_daily_corrected"],
        summary["job_log_totals_corrected"],
    )


def rebuild_days(settings: SchemaSettings, days: Iterable[dt.date], wait_s: float = WAIT_S) -> RebuildSummary:
    """Rebuild the days' aggregates; safe to repeat. Waits up to `wait_s` for another rebuild on the
    server to finish. Raises BackfillFailed when dbt fails, or the other rebuild does not finish."""
    # Staging tables are named per call, so two backfills at once never share one.
    suffix = uuid.uuid4().hex[:12]
    arguments = rebuild_arguments(days, suffix)
    try:
        with rebuild_lock(settings, wait_s) as comment:  # one at a time: two would each insert the same corrections
            result = run_dbt(settings, "run-operation", *arguments, capture=True, log_comment=comment)
            if result.returncode != 0 and (said := unreachable(settings.clickhouse_connection)) is not None:
                # No drop now: the next rebuild drops the staging tables a rebuild left (rebuild_days).
                raise not_rebuilt(said)
            if result.returncode != 0:
                # A failed rebuild may leave its staging tables behind; nothing reuses them, so they go.
                drop = json.dumps({"staging_suffix": suffix})
                run_dbt(settings, "run-operation", "drop_rebuild_staging", "--args", drop, capture=True)
    except RebuildBusy as busy:
        raise BackfillFailed(str(busy)) from None
    except BackfillFailed:
        raise
    except Exception as error:
        # The lock's own statements: a ClickHouse out of reach fails there first, in clickhouse-connect's words.
        said = unreachable(settings.clickhouse_connection)
        if said is None:
            raise
        raise not_rebuilt(said) from error
    if result.returncode != 0:
        raise BackfillFailed(
            f"dbt run-operation rebuild_days failed (exit {result.returncode}):\n{result.stdout[-3000:]}"
        )
    return RebuildSummary(*parse_summary(result.stdout), result.stdout)
