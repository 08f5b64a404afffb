"""sqlfluff, as `./dev test` runs it over the dbt project (.sqlfluff), passes a model written as the
project writes them and fails one that breaks a rule, naming the rule."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SQLFLUFF = str(Path(sys.executable).with_name("sqlfluff"))

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
