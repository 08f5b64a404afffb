"""The commands that work on a ClickHouse say in one line, at once, when it does not answer or refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from analytics.cli import main

COMMANDS = {
    "dead-letters": ["dead-letters"],
    "replay": ["dead-letters", "replay"],
    "migrate": ["migrate"],
    "backfill": ["backfill", "--day", "2026-11-20"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_clickhouse_out_of_reach_is_named_in_one_line(refused_port, command):
    """As a terminal shows it (the command's own process: its logging included): that line alone."""
    url = f"http://127.0.0.1:{refused_port}"
    result = subprocess.run(
        [sys.executable, "-m", "analytics.cli", *command, "--clickhouse-url", url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == "", result.stdout
    assert result.stderr.startswith(f"Error: cannot reach ClickHouse at {url}: [Errno 111] Connection refused (")
    assert result.stderr.count("\n") == 1, result.stderr  # said before dbt starts or a client retries


@pytest.mark.parametrize("command", [COMMANDS["migrate"], COMMANDS["backfill"]], ids=["migrate", "backfill"])
def test_a_clickhouse_refusing_the_user_is_named_with_its_answer(analytics_db, command):
    wrong = f"http://nobody:guess@127.0.0.1:{analytics_db.port}"
    result = CliRunner().invoke(main, [*command, "--clickhouse-url", wrong])
    assert result.exit_code == 1, result.output
    assert f"Error: ClickHouse at http://127.0.0.1:{analytics_db.port} refused: Code: 516." in result.output
