"""README's steps move a workflow_daily of an earlier version (a partition per day) to a partition
per month: every row kept, and the views write into the moved table from then on."""

from __future__ import annotations

from pathlib import Path

from tests import datasets
from tests.intake import deliver, execute, query
from tests.test_orchestration import daily_jobs

README = Path(__file__).parents[1] / "README.md"


def readme_steps() -> list[str]:
    """The statements of README's block after "have a partition per month", comments left out."""
    text = README.read_text()
    start = text.index("`workflow_daily` and `job_duration_daily` have a partition per month.")
    opening = text.index("```\n", start) + len("```\n")
    block = text[opening : text.index("```", opening)]
    sql = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


def partition_key(server) -> str:
    [row] = query(
        server, "SELECT partition_key FROM system.tables WHERE database = 'analytics' AND name = 'workflow_daily'"
    )
    return row["partition_key"]


def all_jobs(server) -> int:
    return int(query(server, "SELECT sum(jobs) AS n FROM analytics.workflow_daily")[0]["n"])


def expected_daily(dataset: datasets.Dataset) -> dict:
    return {key: jobs for key, jobs in dataset.expected.daily_jobs.items() if jobs}


def test_readmes_steps_move_workflow_daily_to_a_partition_per_month(analytics_db):
    server = analytics_db
    # workflow_daily as an earlier version made it: a partition per day, holding every row so far.
    execute(
        server,
        """CREATE TABLE analytics.workflow_daily__earlier AS analytics.workflow_daily
           ENGINE = AggregatingMergeTree PARTITION BY toYYYYMMDD(day) ORDER BY (user_id, workflow_id, day)
           SETTINGS index_granularity = 1024""",
    )
    execute(server, "INSERT INTO analytics.workflow_daily__earlier SELECT * FROM analytics.workflow_daily")
    execute(server, "EXCHANGE TABLES analytics.workflow_daily AND analytics.workflow_daily__earlier")
    execute(server, "DROP TABLE analytics.workflow_daily__earlier SYNC")
    assert partition_key(server) == "toYYYYMMDD(day)"
    before = datasets.generate(seed=43, users=2, workflows_per_user=3, duplicate_rate=0)
    deliver(server, before.messages)
    everything = all_jobs(server)

    for statement in readme_steps():
        execute(server, statement)
    assert partition_key(server) == "toYYYYMM(day)"
    # The old rows, now under the other name: README says to drop them once all looks right.
    execute(server, "DROP TABLE analytics.workflow_daily__by_month SYNC")
    assert all_jobs(server) == everything  # every row of the session's other tests too

    after = datasets.generate(seed=44, users=2, workflows_per_user=3, duplicate_rate=0)
    deliver(server, after.messages)
    assert daily_jobs(server, before.prefix) == expected_daily(before)  # moved, every row kept
    assert daily_jobs(server, after.prefix) == expected_daily(after)  # the views write into the moved table
