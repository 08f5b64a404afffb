"""What a failing reconciliation check names: the rows its dbt test returned.

dagster-dbt records how many rows a failing test returned; a reconciliation test's rows say what
to rebuild (the days of workflow_daily, the workflows of workflow_totals, the jobs of
job_log_totals). The test's SQL, compiled into the run's target directory, is run again for its
first rows, which go into the check's description and metadata.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import dagster as dg

from orchestration.reconciliation.checks import RECONCILIATION_TESTS
from orchestration.resources import ClickHouse

log = logging.getLogger(__name__)

SHOWN = 20  # rows a check's metadata shows
KEYS = ("user_id", "workflow_id", "job_id", "day")
OFF_BY = "off by"  # the column of what differs, and by how much

# The two sides each test returns a column of per counter (`stored_jobs`, `rebuilt_jobs`, ...):
# the aggregate's, then what it should be, with the words that name them.
SIDES = {
    "workflow_daily_matches_raw_history": (("stored", "workflow_daily"), ("rebuilt", "raw history")),
    "workflow_totals_match_raw_history": (("stored", "workflow_totals"), ("rebuilt", "raw history")),
    "workflow_totals_add_up_to_daily": (("totals", "workflow_totals"), ("days", "sum of workflow_daily")),
    "job_log_totals_match_raw_history": (("counted", "job_log_totals"), ("stored", "raw history")),
}


def named(event, target_path: Path, clickhouse: ClickHouse, first_partition: dt.date):
    """The event as it was, or, for a failing reconciliation check, with what it found off;
    ``first_partition``: daily_reconciliation's first day (its last is yesterday, UTC)."""
    if not isinstance(event, dg.AssetCheckResult) or event.passed or event.check_name not in RECONCILIATION_TESTS:
        return event
    compiled = sorted((target_path / "compiled").rglob(f"{event.check_name}.sql"))
    if not compiled:
        return event
    try:
        rows = clickhouse.rows(f"SELECT * FROM ({compiled[0].read_text()}) LIMIT {SHOWN}")
    except Exception as error:  # noqa: BLE001 - the check stays as dbt reported it
        log.warning("could not list the rows of %s: %s", event.check_name, error)
        return event
    keys = [key for key in KEYS if rows and key in rows[0]]
    found = sorted({(*(str(row[key]) for key in keys), off_by(event.check_name, row)) for row in rows})
    keys.append(OFF_BY)
    return dg.AssetCheckResult(
        asset_key=event.asset_key,
        check_name=event.check_name,
        passed=False,
        severity=event.severity,
        description=describe(keys, found, first_partition, check_name=event.check_name),
        metadata={**event.metadata, "off": dg.MetadataValue.md(table(keys, found))},
    )


def off_by(check_name: str, row: dict) -> str:
    """What differs in a failing row, and by how much: `jobs 12 in workflow_daily, 6 in raw history (+6)`."""
    (held, held_name), (truth, truth_name) = SIDES[check_name]
    said = []
    for column, value in row.items():
        if not column.startswith(f"{held}_"):
            continue
        counter = column[len(held) + 1 :]
        expected = row.get(f"{truth}_{counter}")
        if value == expected or expected is None:
            continue
        if isinstance(value, int) and isinstance(expected, int):
            said.append(f"{counter} {value} in {held_name}, {expected} in {truth_name} ({value - expected:+d})")
        else:
            said.append(f"{counter} {value!s} in {held_name}, {expected!s} in {truth_name}")
    return "; ".join(said) or "-"


def off_what(check_name: str) -> str:
    """What the check found the rows off: their raw history, or (the totals) their daily rows."""
    truth = SIDES[check_name][1][1] if check_name in SIDES else "raw history"
    return "their raw history" if truth == "raw history" else "the sum of their workflow_daily rows"


def describe(
    keys: list[str],
    found: list[tuple[str, ...]],
    first_partition: dt.date,
    today: dt.date | None = None,
    check_name: str = "workflow_daily_matches_raw_history",
) -> str:
    more = f" (the first {SHOWN})" if len(found) == SHOWN else ""
    off = f"Off {off_what(check_name)}"
    if "day" in keys:
        days = sorted({row[keys.index("day")] for row in found})
        flags = " ".join(f"--day {day}" for day in days)
        today = today or dt.datetime.now(dt.UTC).date()
        partitions = [day for day in days if first_partition <= dt.date.fromisoformat(day) < today]
        first = f" The first: {named_row(keys, found[0])}." if OFF_BY in keys else ""
        if not partitions:
            where = "no partition of daily_reconciliation holds them (before ANALYTICS_BACKFILL_START_DATE, or today)"
            return f"{off} on {', '.join(days)}{more}: `analytics backfill {flags}` ({where}).{first}"
        which = "those partitions" if partitions == days else f"the partitions {', '.join(partitions)}"
        return (
            f"{off} on {', '.join(days)}{more}: materialise {which} of "
            f"daily_reconciliation, or `analytics backfill {flags}`.{first}"
        )
    named_rows = ", ".join(named_row(keys, row) for row in found)
    return f"{off}{more}: {named_rows}. Rebuilding a day each has events on repairs it."


def named_row(keys: list[str], row: tuple[str, ...]) -> str:
    """`user/workflow` with what is off in it, when the row says."""
    name = "/".join(value for key, value in zip(keys, row, strict=True) if key != OFF_BY)
    off = dict(zip(keys, row, strict=True)).get(OFF_BY)
    return f"{name} ({off})" if off and off != "-" else name


def table(keys: list[str], found: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(row) + " |" for row in found]
    return "\n".join(lines)
