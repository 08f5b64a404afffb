"""A database remembers which generation of the schema built it (schema_history), and code of an
older generation (a rollback, a deployment left behind) changes nothing in it: its migrate and its
backfill stop and say why, where they would have put older views back over newer tables."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from operations.backfill import BackfillFailed, rebuild_days
from operations.dbt import run_dbt
from operations.migrate import migrate
from tests.intake import execute, query

pytestmark = pytest.mark.long_file(20)  # seconds of a worker, measured: run first (tests/scheduling.py)

MACRO = Path(__file__).resolve().parent.parent / "dbt_project" / "macros" / "schema_generation.sql"
GENERATIONS = "SELECT generation, invocation_id FROM analytics.schema_history ORDER BY migrated_at"


def this_generation() -> int:
    [number] = re.findall(r"macro schema_generation\(\) %}\s*{{ return\((\d+)\) }}", MACRO.read_text())
    return int(number)


def test_a_migrate_records_its_generation_once(own_analytics_db):
    server, settings = own_analytics_db
    [first] = query(server, GENERATIONS)
    assert first["generation"] == this_generation() and first["invocation_id"]

    again = migrate(settings, capture=True)  # as every start of `analytics up` does
    assert again.returncode == 0, again.stdout[-3000:]
    assert query(server, GENERATIONS) == [first]


def test_older_code_changes_nothing_in_a_database_a_newer_generation_built(own_analytics_db):
    server, settings = own_analytics_db
    newer = this_generation() + 1
    execute(server, f"INSERT INTO analytics.schema_history VALUES ('2026-12-01 10:00:00', {newer}, 'newer-run')")
    # What a migrate would put back, had it run: a view it creates.
    execute(server, "DROP VIEW analytics.job_states")

    refused = migrate(settings, capture=True)
    assert refused.returncode != 0
    assert (
        f"generation {newer} of the schema built this database (2026-12-01 10:00:00.000 UTC),"
        f" newer than generation {this_generation()}, which this code builds; nothing was changed"
    ) in " ".join(refused.stdout.split())
    absent = "SELECT count() AS n FROM system.tables WHERE database = 'analytics' AND name = 'job_states'"
    assert query(server, absent) == [{"n": 0}]
    assert sorted(row["generation"] for row in query(server, GENERATIONS)) == [this_generation(), newer]

    with pytest.raises(BackfillFailed, match=f"generation {newer} of the schema built this database"):
        rebuild_days(settings, [dt.date(2026, 12, 1)])
    adopting = run_dbt(settings, "run-operation", "adopt_job_log_events_v1", capture=True)  # README's upgrade step
    assert adopting.returncode != 0 and f"generation {newer} of the schema built this database" in adopting.stdout


def test_a_run_records_its_generation_before_it_changes_anything(own_analytics_db):
    """Every run's upgrade steps change the database, a run of some models (Dagster's) too, and a
    run may stop after them: from its start on, older code is refused."""
    server, settings = own_analytics_db
    execute(server, "TRUNCATE TABLE analytics.schema_history")
    execute(server, "INSERT INTO analytics.schema_history VALUES ('2026-12-01 10:00:00', 0, 'older-run')")
    # A run that stops in on-run-start's second step, which finds an earlier name beside its successor.
    execute(server, "CREATE TABLE analytics.legacy_events (x UInt8) ENGINE = Memory")
    stopped = run_dbt(settings, "run", "--select", "job_states", capture=True)
    assert stopped.returncode != 0 and "legacy_events (an earlier name)" in " ".join(stopped.stdout.split())
    assert sorted(row["generation"] for row in query(server, GENERATIONS)) == [0, this_generation()]
