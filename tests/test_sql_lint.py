"""sqlfluff over the dbt project (.sqlfluff): the project's models and data tests pass it, a model written as the
project writes them passes, and one that breaks a rule fails, naming the rule.

The project's own lint runs here, beside the other tests on a worker of its own, rather than
before the suite: its 25 CPU-seconds (parsing 87 models) then fill time the workers spend waiting."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SQLFLUFF = str(Path(sys.executable).with_name("sqlfluff"))

pytestmark = pytest.mark.long_file(26)  # seconds of a worker, measured: run first (tests/scheduling.py)

GOOD = """{{ config(order_by='(user_id, day)') }}

select
    user_id,
    toDate(event_time) as day,
    quantilesTDigestState(0.5, 0.99)(duration) as quantiles,
    cast(0 as SimpleAggregateFunction(sum, Int64)) as jobs
from {{ ref('job_completions') }}
where {{ var('log_retention_hours') }} > 0
limit 1 by user_id
"""


@pytest.fixture
def project(tmp_path) -> Path:
    for name in (".sqlfluff", "dbt_project.yml"):
        shutil.copy(REPO / name, tmp_path / name)
    for folder in ("dbt_project/macros", "dbt_project/lint"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "dbt_project" / "models").mkdir()
    return tmp_path


def lint(project: Path, sql: str) -> subprocess.CompletedProcess:
    (project / "dbt_project" / "models" / "model.sql").write_text(sql)
    return subprocess.run(
        [SQLFLUFF, "lint", "dbt_project/models"], cwd=project, capture_output=True, text=True, timeout=300
    )


def test_the_projects_models_and_data_tests_pass():
    # The tests below show this configuration failing a model that breaks a rule.
    result = subprocess.run(
        [SQLFLUFF, "lint", "dbt_project/models", "dbt_project/tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def test_a_model_written_as_the_project_writes_them_passes(project):
    result = lint(project, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        (GOOD.replace("select\n", "SELECT\n"), "CP01"),  # keywords in one case
        (GOOD.replace("    user_id,\n", "  user_id,\n"), "LT02"),  # indentation
        # an alias never used
        (GOOD.replace("{{ ref('job_completions') }}", "{{ ref('job_completions') }} as jc, t"), "AL05"),
    ],
)
def test_a_model_that_breaks_a_rule_fails_naming_it(project, sql, rule):
    result = lint(project, sql)
    assert result.returncode != 0
    assert rule in result.stdout, result.stdout
