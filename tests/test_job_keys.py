"""A job is its user's workflow's job: two users whose workflow and job ids are the same each have
their job counted, and a database whose job gates keyed jobs by workflow and job alone (an earlier
version) is brought to the user's key by `analytics migrate`, counting the jobs it had missed once."""

from __future__ import annotations

import pytest

from operations.migrate import migrate
from tests.intake import execute, post_batch, query

pytestmark = pytest.mark.long_file(25)  # seconds of a worker, measured: run first (tests/scheduling.py)

GATES = {
    "job_first_seen_from_job_events_mv": ("'user_job', user_id, workflow_id, job_id", "'job', workflow_id, job_id"),
    "job_completions_from_job_events_mv": (
        "'user_job_end', user_id, workflow_id, job_id",
        "'job_end', workflow_id, job_id",
    ),
}
TOTALS = "SELECT user_id, total_jobs, total_job_execution_duration FROM analytics.user_totals ORDER BY user_id"


def events(user: str) -> tuple[list[dict], list[dict]]:
    """A workflow `w-1` and its job `j-1`, run for 5 s: the same ids for every user."""
    workflow = {
        "event_id": f"{user}-wf",
        "event_time": "2026-12-01T09:00:00Z",
        "event_type": "workflow",
        "event_name": "created",
        "user_id": user,
        "workflow_id": "w-1",
        "kind": "HEARTBEAT",
    }
    job = {"event_type": "job", "user_id": user, "workflow_id": "w-1", "job_id": "j-1"}
    jobs = [
        {
            **job,
            "event_id": f"{user}-c",
            "event_time": "2026-12-01T10:00:00Z",
            "event_name": "created",
            "status": "PENDING",
        },
        {
            **job,
            "event_id": f"{user}-d",
            "event_time": "2026-12-01T10:00:07Z",
            "event_name": "completed",
            "status": "COMPLETED",
            "started_at": "2026-12-01T10:00:02Z",
            "completed_at": "2026-12-01T10:00:07Z",
        },
    ]
    return [workflow], jobs


def send(server, *users: str) -> None:
    for user in users:  # one insert per user and topic: each user's job meets the keys of the one before
        workflows, jobs = events(user)
        assert post_batch(server, "workflows", workflows).status == 200
        assert post_batch(server, "jobs", jobs).status == 200


def totals(server) -> list[tuple[str, int, int]]:
    return [(r["user_id"], int(r["total_jobs"]), int(r["total_job_execution_duration"])) for r in query(server, TOTALS)]


def test_users_with_the_same_workflow_and_job_ids_each_have_their_job(own_analytics_db):
    server, _ = own_analytics_db
    send(server, "ua", "ub")
    send(server, "ua", "ub")  # delivered again: counted once
    assert totals(server) == [("ua", 1, 5), ("ub", 1, 5)]
    [completions] = query(server, "SELECT count() AS n FROM analytics.job_completions FINAL")
    assert int(completions["n"]) == 2


def test_gates_keyed_by_workflow_and_job_alone_are_upgraded_and_the_jobs_they_missed_counted(own_analytics_db):
    server, settings = own_analytics_db
    for view, (current, earlier) in GATES.items():
        [row] = query(server, f"SELECT create_table_query AS q FROM system.tables WHERE name = '{view}'")
        assert current in row["q"], row["q"]
        execute(server, f"DROP VIEW analytics.{view}")
        execute(server, row["q"].replace(current, earlier))
    send(server, "ua", "ub")
    assert totals(server) == [("ua", 1, 5), ("ub", 0, 0)]  # what the earlier keys did

    upgraded = migrate(settings, capture=True)
    assert upgraded.returncode == 0, upgraded.stdout[-3000:]
    assert upgraded.stdout.count("and 1 jobs it had missed into it") == 2, upgraded.stdout[-3000:]
    assert totals(server) == [("ua", 1, 5), ("ub", 1, 5)]
    # The jobs stored before carry the new keys too: delivered again, nothing counts twice.
    send(server, "ua", "ub", "uc")
    assert totals(server) == [("ua", 1, 5), ("ub", 1, 5), ("uc", 1, 5)]

    again = migrate(settings, capture=True)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "wrote the keys" not in again.stdout
    assert totals(server) == [("ua", 1, 5), ("ub", 1, 5), ("uc", 1, 5)]
