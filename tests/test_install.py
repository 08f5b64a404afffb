"""Installing the parts: the project installed into fresh environments, as a user would.

- `pip install workflow-analytics` (no extra) is the producer SDK and the command line: no chDB,
  no gRPC, no dbt; a command that needs the stack ends with one line naming the extra to install.
- `pip install 'workflow-analytics[server]'` runs the gRPC AnalyticsService against a ClickHouse
  over HTTP with no chDB installed, answering from the database it is given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import datasets
from tests.embedded_server import free_port
from tests.grpc_server import ServiceProcess, call_by_reflection, wait_until_serving
from tests.intake import deliver

REPO = Path(__file__).resolve().parent.parent
UV = REPO / ".analytics" / "tools" / "bin" / "uv"


def install(target: Path, requirement: str) -> Path:
    """A fresh virtual environment at ``target`` holding ``requirement``; its Python."""
    uv = str(UV) if UV.exists() else "uv"
    env = {**os.environ, "VIRTUAL_ENV": str(target)}
    env.pop("PYTHONPATH", None)
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(target)], check=True, timeout=300)
    result = subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(target / "bin" / "python"), requirement],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return target / "bin" / "python"


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python args`` outside the repository, so only what was installed can be imported."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHONPATH", "ANALYTICS_"))}
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def importable(python: Path, module: str, cwd: Path) -> bool:
    return run(python, "-c", f"import {module}", cwd=cwd).returncode == 0


@pytest.fixture(scope="module")
def sdk_only(tmp_path_factory) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("sdk-only")
    return install(home / "venv", str(REPO)), home


@pytest.fixture(scope="module")
def server_only(tmp_path_factory) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("server-only")
    return install(home / "venv", f"{REPO}[server]"), home


def test_a_producer_installs_the_sdk_without_the_stack(sdk_only):
    python, home = sdk_only
    sent = run(
        python,
        "-c",
        "from events import Client, ClickHouseSink, KafkaSink; print(Client.__name__, KafkaSink.__name__)",
        cwd=home,
    )
    assert sent.returncode == 0, sent.stderr
    for module in ("chdb", "grpc", "dbt", "dagster", "uvicorn", "clickhouse_connect"):
        assert not importable(python, module, home), f"{module} came with the SDK"


@pytest.mark.parametrize(
    ("command", "extra"), [("up", "stack"), ("grpc", "server"), ("migrate", "dbt"), ("dagster", "orchestration")]
)
def test_a_command_without_its_extra_says_in_one_line_which_to_install(sdk_only, command, extra):
    python, home = sdk_only
    result = run(python, "-m", "analytics.cli", command, cwd=home)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"pip install 'workflow-analytics[{extra}]'" in lines[0], lines[0]


def test_the_grpc_server_runs_without_chdb_against_a_clickhouse_over_http(server_only, analytics_db):
    python, home = server_only
    assert not importable(python, "chdb", home)
    assert importable(python, "server.service", home)
    dataset = datasets.generate(seed=67, users=2, workflows_per_user=2)
    deliver(analytics_db, dataset.messages)
    port = free_port()
    log_path = home / "grpc.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(python), "-m", "analytics.cli", "grpc", "--port", str(port), "--clickhouse-url", analytics_db.url],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home,
            env={key: value for key, value in os.environ.items() if not key.startswith(("PYTHONPATH", "ANALYTICS_"))},
        )
    service = ServiceProcess(process, port, log_path)
    try:
        wait_until_serving(service)
        for user in dataset.expected.users:
            workflows, jobs, joblogs, seconds = dataset.expected.user(user)
            answer = call_by_reflection(
                service.target, "analytics.AnalyticsService/GetUserAnalytics", json.dumps({"user_id": user})
            )
            assert answer == {
                "total_workflows": workflows,
                "total_jobs": str(jobs),
                "total_joblogs": str(joblogs),
                "total_job_execution_duration": str(seconds),
            }, (user, service.log())
    finally:
        service.stop()
