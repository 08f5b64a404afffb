"""Settings refused before anything starts: out of their range, or naming a place that cannot be.

Each is one line naming the variable, exit code 2, with nothing started: the commands load their
settings first (`analytics.cli.load_settings`).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from analytics.cli import main


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("ANALYTICS_KAFKA_MAX_BLOCK_SIZE", "-1", "greater than or equal to 1"),
        ("ANALYTICS_KAFKA_MAX_BLOCK_BYTES", "1000", "greater than or equal to 1048576"),
        ("ANALYTICS_KAFKA_FLUSH_INTERVAL_MS", "0", "greater than or equal to 1"),
        ("ANALYTICS_KAFKA_CONSUMERS", "0", "greater than or equal to 1"),
        ("ANALYTICS_KAFKA_TOPIC_PREFIX", "a/b", "should match pattern"),
        ("ANALYTICS_CLICKHOUSE_HTTP_PORT", "70000", "less than or equal to 65535"),
        ("ANALYTICS_CLICKHOUSE_MAX_CONCURRENT_QUERIES", "0", "greater than or equal to 1"),
        ("ANALYTICS_LOG_RETENTION_HOURS", "0", "greater than or equal to 1"),
        ("ANALYTICS_LOG_LEVEL", "LOUD", "'LOUD' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("ANALYTICS_CLICKHOUSE_URL", "clickhouse:8123", "'clickhouse:8123' is not http(s)://HOST[:PORT]"),
        ("ANALYTICS_CLICKHOUSE_URL", "http://:8123", "'http://:8123' is not http(s)://HOST[:PORT]"),
        ("ANALYTICS_CLICKHOUSE_URL", "http://ch:99999", "the port of 'http://ch:99999' is not a number from 1 to"),
        # A URL's password is not shown.
        (
            "ANALYTICS_CLICKHOUSE_URL",
            "http://u:Secret-1@ch:99999",
            "the port of 'http://u:***@ch:99999' is not a number",
        ),
        ("ANALYTICS_CLICKHOUSE_URL", "ftp://u:Secret-1@ch", "'ftp://u:***@ch' is not http(s)://HOST[:PORT]"),
        ("ANALYTICS_GRPC_DRAIN_SECONDS", "inf", "Input should be a finite number"),
        ("ANALYTICS_KAFKA_STOP_TIMEOUT", "1e300", "less than or equal to 3600"),
        ("ANALYTICS_BACKFILL_START_DATE", "1900-01-01", "greater than or equal to 1970-01-01"),
        ("ANALYTICS_LOG_RETENTION_HOURS", "1000001", "less than or equal to 1000000"),
        # Set to nothing: the data went to the current directory, the server to every interface.
        ("ANALYTICS_DATA_DIR", "", "is empty: give a value, or unset the variable"),
        ("ANALYTICS_CLICKHOUSE_HOST", " ", "is empty: give a value, or unset the variable"),
        ("ANALYTICS_GRPC_HOST", "", "is empty: give a value, or unset the variable"),
        # Set to nothing: no user (every client refused, after the start), or the current directory.
        ("ANALYTICS_CLICKHOUSE_USER", "", "is empty: give a value, or unset the variable"),
        ("ANALYTICS_GRPC_TOKENS_FILE", "", "is empty: give a value, or unset the variable"),
        ("ANALYTICS_GRPC_TLS_CERT", "", "is empty: give a value, or unset the variable"),
        ("ANALYTICS_GRPC_TLS_KEY", "", "is empty: give a value, or unset the variable"),
        ("ANALYTICS_GRPC_TLS_CLIENT_CA", "", "is empty: give a value, or unset the variable"),
        ("ANALYTICS_DBT_EXECUTABLE", "", "is empty: give a value, or unset the variable"),
        ("ANALYTICS_DBT_EXECUTABLE", "/nonexistent/dbt", "/nonexistent/dbt is not a program this user can run"),
        ("ANALYTICS_DBT_EXECUTABLE", "/etc", "/etc is not a program this user can run"),
    ],
)
def test_ingest_names_a_setting_out_of_its_range_before_it_starts(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(main, ["ingest", "--kafka", "127.0.0.1:9092"])
    assert result.exit_code == 2, result.output
    assert f"invalid settings: {variable}: " in result.output and named in result.output, result.output
    assert "Secret-1" not in result.output


def test_an_empty_token_variable_is_tokens_given_none_not_authentication_off(monkeypatch):
    from core.settings.composed import Settings
    from server.service import AnalyticsServer, GrpcStartError

    monkeypatch.setenv("ANALYTICS_GRPC_TOKENS", "")
    with pytest.raises(GrpcStartError, match="tokens are configured but none is given"):
        AnalyticsServer(Settings(), backend=None)


@pytest.mark.parametrize("value", ["999", "1800001", "ten"])
def test_ingest_rejects_a_session_timeout_kafka_would_refuse(monkeypatch, value):
    monkeypatch.setenv("ANALYTICS_KAFKA_SESSION_TIMEOUT_MS", value)
    result = CliRunner().invoke(main, ["ingest", "--kafka", "127.0.0.1:9092"])
    assert result.exit_code == 2
    assert "ANALYTICS_KAFKA_SESSION_TIMEOUT_MS" in result.output


@pytest.mark.parametrize(
    ("command", "variable", "under"),
    [
        ("clickhouse", "ANALYTICS_DATA_DIR", ""),
        ("up", "ANALYTICS_DATA_DIR", "/inside"),
        ("migrate", "ANALYTICS_DATA_DIR", ""),
        ("clickhouse", "ANALYTICS_CLICKHOUSE_DATA_DIR", ""),
        ("kafka", "ANALYTICS_KAFKA_DATA_DIR", "/inside"),
        ("dagster", "ANALYTICS_DAGSTER_HOME", ""),
    ],
)
def test_a_data_directory_where_a_file_is_is_named(monkeypatch, tmp_path, command, variable, under):
    """Each command made its directories at start and stopped with a NotADirectoryError traceback."""
    file = tmp_path / "a-file"
    file.write_text("not a directory\n")
    monkeypatch.setenv(variable, f"{file}{under}")
    result = CliRunner().invoke(main, [command])
    assert result.exit_code == 2, result.output
    where = f"{file} is a file" if under else "it is a file"
    expected = f"invalid settings: {variable}: {file}{under} cannot be a directory: {where}, not a directory"
    assert expected in result.output and file.read_text() == "not a directory\n"


@pytest.mark.parametrize(
    ("command", "flag", "variable", "named"),
    [
        (["grpc", "--port", "99999"], "--port", "ANALYTICS_GRPC_PORT", "less than or equal to 65535"),
        (["kafka", "--port", "0"], "--port", "ANALYTICS_KAFKA_PORT", "greater than or equal to 1"),
        (["topics", "--partitions", "0"], "--partitions", "ANALYTICS_KAFKA_TOPIC_PARTITIONS", "greater than or equal"),
        # It was an OverflowError's traceback.
        (["topics", "--partitions", "99999999999"], "--partitions", "ANALYTICS_KAFKA_TOPIC_PARTITIONS", "less than or"),
        # Two flags of the same small number: Python shares the object, and --port was named for --workers.
        (["grpc", "--port", "0", "--workers", "0"], "--workers", "ANALYTICS_GRPC_WORKERS", "greater than or equal"),
    ],
)
def test_a_flag_out_of_range_is_named_as_the_flag(command, flag, variable, named):
    """The value came from the command line: the error names the flag typed, and the variable behind it."""
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2, result.output
    said = result.output.split("invalid settings: ", 1)[-1]
    assert f"{flag} ({variable}): " in said and named in said and "--port (ANALYTICS_GRPC_WORKERS)" not in said, said


def test_a_variable_no_setting_reads_is_warned_of_naming_the_one_it_resembles():
    from analytics.settings import unknown_variables

    environment = {"ANALYTICS_GRCP_PORT": "1", "ANALYTICS_GRPC_PORT": "50056", "ANALYTICS_FAULT_POINT": "", "PATH": "/"}
    assert unknown_variables(environment) == [
        "ANALYTICS_GRCP_PORT is not a setting of this version and is ignored; did you mean ANALYTICS_GRPC_PORT?"
    ]
    assert unknown_variables({"ANALYTICS_ZZZZZZZZZZZZZZZZZZZZ": "x"}) == [
        "ANALYTICS_ZZZZZZZZZZZZZZZZZZZZ is not a setting of this version and is ignored"
    ]


def test_an_ipv6_host_is_written_in_brackets_in_every_url(monkeypatch):
    """ANALYTICS_CLICKHOUSE_HOST=::1 gave http://::1:8123: every client failed (a port of ':1:8123')."""
    from analytics.dagster_service import DagsterService
    from core.clickhouse.http import HttpClient
    from core.settings.composed import Settings
    from operations.dbt import dbt_environment

    settings = Settings(clickhouse_host="::1", clickhouse_http_port=41123, dagster_host="::1", dagster_port=41300)
    assert settings.resolved_clickhouse_url == "http://[::1]:41123"
    connection = settings.clickhouse_connection
    assert (connection.host, connection.port, connection.url) == ("::1", 41123, "http://[::1]:41123")
    assert HttpClient(settings.resolved_clickhouse_url).url == "http://[::1]:41123"
    assert dbt_environment(settings)["ANALYTICS_CLICKHOUSE_HOST"] == "[::1]"  # dbt-clickhouse writes a URL of it
    assert DagsterService(settings).url == "http://[::1]:41300"
    assert Settings(clickhouse_url="http://[::1]:9000").clickhouse_connection.url == "http://[::1]:9000"


def test_a_data_directory_under_the_home_directory_is_kept_there(tmp_path):
    """ANALYTICS_DATA_DIR=~/analytics, as a systemd unit or an env file writes it (no shell expands
    it): the command made a directory named '~' where it started, then chDB, which reads '~' as
    the home directory, failed with 'ValueError: Connection failed: File not found' in a traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.embedded_server import EmbeddedClickHouse, free_port, stop_process, stopped_at_exit, wait_until_ready

    home, started_in = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), started_in.mkdir()
    root = Path(__file__).resolve().parent.parent
    port = free_port()
    log_path = tmp_path / "clickhouse.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "analytics.cli", "clickhouse", "--http-port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=started_in,
            env={**os.environ, "HOME": str(home), "ANALYTICS_DATA_DIR": "~/analytics", "PYTHONPATH": str(root)},
        )
    stopped_at_exit(process)
    try:
        wait_until_ready(EmbeddedClickHouse(home / "analytics", port, process, log_path))
    finally:
        stop_process(process)
    assert (home / "analytics" / "clickhouse" / "metadata").is_dir()
    assert not (started_in / "~").exists()


@pytest.mark.parametrize("variable", ["ANALYTICS_DATA_DIR", "ANALYTICS_CLICKHOUSE_DATA_DIR"])
def test_a_clickhouse_data_directory_with_a_question_mark_is_refused(tmp_path, variable):
    """chDB reads a '?' in its path as the start of its options: with ANALYTICS_DATA_DIR=/srv/a?b the
    server served, its tables in /srv/a, outside the directory given and its lock."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.embedded_server import free_port

    given = tmp_path / "a?b"
    result = subprocess.run(
        [sys.executable, "-m", "analytics.cli", "clickhouse", "--http-port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, variable: str(given)},
    )
    assert result.returncode == 2, result.stderr
    assert f"invalid settings: {variable}: {given} holds a '?'" in result.stderr, result.stderr
    assert not (tmp_path / "a").exists() and not given.exists()


def test_audit_mode_with_a_retention_of_hours_is_refused_naming_both(monkeypatch):
    """Each says what to do with the log lines: keep them all, or drop them after these hours. Both
    given, audit mode won without a word, and a user who set 72 hours kept every line for ever."""
    monkeypatch.setenv("ANALYTICS_AUDIT_MODE", "true")
    monkeypatch.setenv("ANALYTICS_LOG_RETENTION_HOURS", "72")
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 2, result.output
    assert "ANALYTICS_AUDIT_MODE=true keeps every log line" in result.output, result.output
    assert "ANALYTICS_LOG_RETENTION_HOURS" in result.output, result.output
