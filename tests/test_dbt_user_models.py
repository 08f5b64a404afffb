"""A model of the user's own, in a folder of its own beside the schema's, behaves as dbt says.

The schema's rules (tables created once and appended to, `--full-refresh` ignored, refs that keep
no `--empty` limit) are the schema folders' own: set on the whole project, they made a user's
model an append-only table that every run doubled and `--full-refresh` could not reset.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from operations.dbt import PROJECT_ROOT, dbt_environment, dbt_executable, dbt_vars
from tests import datasets
from tests.intake import deliver, execute, query

# No config of its own: what dbt gives a model of a new folder (a view), not the schema's tables.
MODEL = """select user_id, sum(jobs) as jobs
from {{ ref('workflow_totals') }}
where startsWith(user_id, '{{ var('prefix') }}')
group by user_id
"""


def user_project(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_ROOT / name, project / name)
    shutil.copytree(PROJECT_ROOT / "dbt_project", project / "dbt_project")
    (project / "dbt_project" / "models" / "marts").mkdir()
    (project / "dbt_project" / "models" / "marts" / "user_jobs.sql").write_text(MODEL)
    return project


def dbt(settings, project, *args: str, prefix: str) -> str:
    command = [
        dbt_executable(settings),
        "run",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(project / "target"),
        "--log-path",
        str(project / "logs"),
        "--vars",
        json.dumps({**dbt_vars(settings), "prefix": prefix}),
        "--select",
        "user_jobs",
        *args,
    ]
    env = {**os.environ, **dbt_environment(settings)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def test_a_users_model_gets_dbts_defaults_and_keeps_dbts_empty(analytics_db, tmp_path):
    dataset = datasets.generate(seed=91, users=3, workflows_per_user=2, jobs_per_workflow=2)
    deliver(analytics_db, dataset.messages)
    settings, project = analytics_db.settings(), user_project(tmp_path)
    expected = sorted((user, dataset.expected.user(user)[1]) for user in dataset.expected.users)

    def stored() -> list:
        return sorted(
            (row["user_id"], int(row["jobs"])) for row in query(analytics_db, "SELECT * FROM analytics.user_jobs")
        )

    try:
        dbt(settings, project, prefix=dataset.prefix)
        dbt(settings, project, prefix=dataset.prefix)  # appended to, it held every user twice
        assert stored() == expected
        dbt(settings, project, "--empty", prefix=dataset.prefix)
        assert stored() == []
        dbt(settings, project, "--full-refresh", prefix=dataset.prefix)
        assert stored() == expected
    finally:
        execute(analytics_db, "DROP VIEW IF EXISTS analytics.user_jobs")
        execute(analytics_db, "DROP TABLE IF EXISTS analytics.user_jobs")
