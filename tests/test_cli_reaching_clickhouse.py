"""The commands that work on a ClickHouse say in one line, at once, when it does not answer or refuses."""

from __future__ import annotations

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
    url = f"http://127.0.0.1:{refused_port}"
    result = CliRunner().invoke(main, [*command, "--clickhouse-url", url])
    assert result.exit_code == 1, result.output
    assert f"Error: cannot reach ClickHouse at {url}: [Errno 111] Connection refused" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    # Said before dbt starts: nothing of dbt's own output.
    assert "Database Error" not in result.output and "dbt" not in result.output.split("Error: ")[-1], result.output


@pytest.mark.parametrize("command", [COMMANDS["migrate"], COMMANDS["backfill"]], ids=["migrate", "backfill"])
def test_a_clickhouse_refusing_the_user_is_named_with_its_answer(analytics_db, command):
    wrong = f"http://nobody:guess@127.0.0.1:{analytics_db.port}"
    result = CliRunner().invoke(main, [*command, "--clickhouse-url", wrong])
    assert result.exit_code == 1, result.output
    assert f"Error: ClickHouse at http://127.0.0.1:{analytics_db.port} refused: Code: 516." in result.output
