"""Compare what ClickHouse holds with the numbers a generated data set should give."""

from __future__ import annotations

from tests import datasets
from tests.intake import query


def workflow_numbers(server, prefix: str) -> dict:
    rows = query(
        server,
        f"""SELECT user_id, workflow_id, tupleElement(max(kind), 2) AS kind, sum(jobs) AS jobs, sum(joblogs) AS joblogs,
                   sum(job_execution_seconds) AS seconds, sum(jobs_completed) AS completed,
                   sum(jobs_failed) AS failed, sum(jobs_cancelled) AS cancelled
            FROM analytics.workflow_totals WHERE startsWith(user_id, '{prefix}')
            GROUP BY user_id, workflow_id""",
    )
    return {(row["user_id"], row["workflow_id"]): row for row in rows}


def user_numbers(server, prefix: str) -> dict:
    rows = query(server, f"SELECT * FROM analytics.user_totals WHERE startsWith(user_id, '{prefix}')")
    return {
        row["user_id"]: (
            int(row["total_workflows"]),
            int(row["total_jobs"]),
            int(row["total_joblogs"]),
            int(row["total_job_execution_duration"]),
        )
        for row in rows
    }


def assert_matches(server, dataset: datasets.Dataset) -> None:
    expected = dataset.expected
    stored = workflow_numbers(server, dataset.prefix)
    assert set(stored) == expected.workflows
    for key, row in stored.items():
        assert (int(row["jobs"]), int(row["joblogs"]), int(row["seconds"])) == expected.workflow(*key), key
        assert row["kind"] == expected.kinds[key]
        outcomes = expected.outcomes[key]
        assert (int(row["completed"]), int(row["failed"]), int(row["cancelled"])) == (
            outcomes["completed"],
            outcomes["failed"],
            outcomes["cancelled"],
        ), key
    assert user_numbers(server, dataset.prefix) == {user: expected.user(user) for user in expected.users}
