"""A port another process listens on is refused at start, in one line naming its variable, before anything runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
import urllib3

from tests.embedded_server import free_port
from tests.grpc_server import SERVING, health_status, start_grpc

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analytics.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def assert_refused_in_one_line(result: subprocess.CompletedProcess, port: int, variable: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    refusal = f"Error: cannot listen on 127.0.0.1:{port} ({variable}): Address already in use; another process has it"
    assert len(lines) == 1 and lines[0].startswith(refusal), result.stderr


@pytest.mark.kafka
def test_kafka_on_the_port_of_a_running_broker_is_refused(kafka, tmp_path):
    """It said the broker served and was ready (the running one answered), then failed seconds later."""
    result = run_cli("kafka", "--port", str(kafka.port), "--data-dir", str(tmp_path / "kafka"))
    assert_refused_in_one_line(result, kafka.port, "ANALYTICS_KAFKA_PORT")
    assert "ready for clients" not in result.stderr
    assert not (tmp_path / "kafka").exists()


@pytest.mark.kafka
def test_kafka_on_the_data_directory_of_a_running_broker_is_refused_and_leaves_it_alone(kafka):
    """A second broker there rewrote the first's server.properties and opened its metadata log:
    the running broker timed out, could create no topic and had to be killed to stop."""
    properties = (kafka.data_dir / "server.properties").read_text()
    other_port = str(socket.create_server(("127.0.0.1", 0)).getsockname()[1])  # closed at once: free
    result = run_cli("kafka", "--port", other_port, "--data-dir", str(kafka.data_dir))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: data directory {kafka.data_dir} is in use by process "), (
        lines
    )
    assert "(ANALYTICS_KAFKA_DATA_DIR)" in lines[0]
    assert (kafka.data_dir / "server.properties").read_text() == properties
    from confluent_kafka.admin import AdminClient

    assert AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).brokers  # still serving


@pytest.mark.kafka
def test_ingest_on_a_taken_metrics_port_is_refused_before_it_consumes(kafka, refused_port):
    """It logged a warning and ingested without metrics."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli(
            "ingest",
            "--kafka",
            kafka.bootstrap,
            "--clickhouse-url",
            f"http://127.0.0.1:{refused_port}",
            "--no-create-topics",
            "--metrics-port",
            str(port),
            env={"ANALYTICS_KAFKA_TOPIC_PREFIX": f"m{uuid.uuid4().hex[:8]}."},
        )
    assert_refused_in_one_line(result, port, "ANALYTICS_INGEST_METRICS_PORT")


def test_grpc_on_a_taken_port_is_refused_in_one_line_of_its_own(refused_port):
    """grpc's C core logged its own line first, and the refusal named no variable."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("grpc", "--port", str(port), "--clickhouse-url", f"http://127.0.0.1:{refused_port}")
    assert_refused_in_one_line(result, port, "ANALYTICS_GRPC_PORT")


def test_grpc_with_one_port_for_the_service_and_its_metrics_is_refused_naming_both(refused_port):
    """It said 'Address already in use' of the metrics port, which no other process held."""
    port = str(free_port())
    result = run_cli(
        "grpc", "--port", port, "--metrics-port", port, "--clickhouse-url", f"http://127.0.0.1:{refused_port}"
    )
    assert result.returncode == 2, result.stderr
    said = f"--metrics-port (ANALYTICS_GRPC_METRICS_PORT) and --port (ANALYTICS_GRPC_PORT) are both {port}: give each"
    assert said in result.stderr and "Address already in use" not in result.stderr, result.stderr


def test_an_ipv6_address_in_brackets_as_grpc_writes_it_is_checked_bare():
    """`ANALYTICS_GRPC_HOST=[::]` is how gRPC addresses every IPv6 interface: the port check takes it."""
    from core.ports import CannotListen, check_free

    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as held:
        held.bind(("::", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(CannotListen, match=r"cannot listen on \[::\]:\d+ \(ANALYTICS_GRPC_PORT\)"):
            check_free("[::]", port, "ANALYTICS_GRPC_PORT")
    check_free("[::]", port, "ANALYTICS_GRPC_PORT")  # free again: no refusal


@pytest.mark.parametrize("host", ["::", "[::]"])
def test_grpc_listens_on_an_ipv6_address_bare_or_in_brackets_and_its_metrics_too(tmp_path, clickhouse, host):
    """`--host ::`, as ANALYTICS_CLICKHOUSE_HOST takes it, was refused as 'in use, or not an address of
    this machine' (gRPC was given ':::PORT'); `[::]` started the service, and its metrics port failed."""
    metrics_port = free_port()
    service = start_grpc(
        tmp_path,
        "--host",
        host,
        "--metrics-port",
        str(metrics_port),
        env={"ANALYTICS_CLICKHOUSE_HTTP_PORT": str(clickhouse.port)},
    )
    try:
        with grpc.insecure_channel(f"[::1]:{service.port}") as channel:
            assert health_status(channel) == SERVING
        for url in (f"http://[::1]:{metrics_port}/metrics", f"http://127.0.0.1:{metrics_port}/metrics"):
            assert b"# TYPE analytics_grpc_requests_total counter" in urllib3.request("GET", url).data
        assert f"gRPC AnalyticsService on [::]:{service.port} " in service.log()
    finally:
        service.stop()


def test_a_data_directory_that_cannot_be_written_is_refused_in_one_line():
    """A read-only or unmakeable data directory was an OSError's traceback."""
    result = run_cli("clickhouse", "--data-dir", "/proc/analytics-data", "--http-port", "1")
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == ["Error: cannot keep data in /proc/analytics-data: No such file or directory"]


def test_up_names_the_host_variable_for_an_address_that_is_not_this_machines(tmp_path):
    """It named ANALYTICS_GRPC_PORT for an ANALYTICS_GRPC_HOST no interface has, as `grpc` does not."""
    result = run_cli(
        "up",
        "--no-dagster",
        env={"ANALYTICS_GRPC_HOST": "192.0.2.1", "ANALYTICS_DATA_DIR": str(tmp_path / "data")},  # TEST-NET-1
    )
    assert result.returncode == 1, result.stderr
    assert "Error: cannot listen on 192.0.2.1:50055 (ANALYTICS_GRPC_HOST): " in result.stderr, result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_up_with_kafka_refuses_a_kafka_bootstrap_of_another_broker(tmp_path):
    """`up --with-kafka` ingested from its own broker and left ANALYTICS_KAFKA_BOOTSTRAP unread, unsaid:
    the events producers sent to the broker it named never arrived. (The broker's port is taken
    here so that a command that goes on past the settings stops at once.)"""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {
            "ANALYTICS_KAFKA_BOOTSTRAP": "kafka.example:9092",
            "ANALYTICS_KAFKA_PORT": str(port),
            "ANALYTICS_DATA_DIR": str(tmp_path / "data"),
        }
        result = run_cli("up", "--no-dagster", "--with-kafka", env=env)
    assert result.returncode == 2, result.stderr
    said = (
        f"--with-kafka runs a broker on 127.0.0.1:{port} (ANALYTICS_KAFKA_PORT) and ingests from it, but "
        "ANALYTICS_KAFKA_BOOTSTRAP names kafka.example:9092"
    )
    assert said in result.stderr and not (tmp_path / "data").exists(), result.stderr


def test_up_with_kafka_takes_a_kafka_bootstrap_of_its_own_broker(tmp_path):
    """The variable exported for `analytics topics` beside it names the same broker: no conflict."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {
            "ANALYTICS_KAFKA_BOOTSTRAP": f"localhost:{port}",
            "ANALYTICS_KAFKA_PORT": str(port),
            "ANALYTICS_DATA_DIR": str(tmp_path / "data"),
        }
        result = run_cli("up", "--no-dagster", "--with-kafka", env=env)
    assert_refused_in_one_line(result, port, "ANALYTICS_KAFKA_PORT")  # on to the port check: the taken port


@pytest.mark.parametrize(
    "setting",
    ["ANALYTICS_DBT_TARGET=server", "ANALYTICS_INGEST=kafka", "ANALYTICS_CLUSTER=analytics_cluster"],
)
def test_up_refuses_the_settings_of_server_mode_before_it_starts(tmp_path, setting):
    """They failed after the schema build began: 'start the embedded ClickHouse with
    --allow-file-access' for Kafka-engine tables, or an unknown cluster."""
    variable, value = setting.split("=")
    result = run_cli("up", "--no-dagster", env={variable: value, "ANALYTICS_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 1, result.stderr
    assert f"`analytics up` runs the embedded default, where {setting} cannot hold" in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "data").exists()


@pytest.mark.kafka
def test_kafka_with_one_port_for_the_broker_and_its_controller_is_refused_before_the_jvm_starts(tmp_path):
    """The JVM started and said so only in a listener error among its own warnings."""
    port = "41999"
    result = run_cli("kafka", "--port", port, "--controller-port", port, "--data-dir", str(tmp_path / "kafka"))
    assert result.returncode == 1, result.stderr
    said = "ANALYTICS_KAFKA_PORT and ANALYTICS_KAFKA_CONTROLLER_PORT are both 41999: give each its own"
    assert said in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", [["migrate"], ["backfill", "--day", "2026-11-20"]], ids=["migrate", "backfill"])
def test_a_cluster_for_the_embedded_target_is_refused_before_dbt_runs(refused_port, tmp_path, command):
    """The embedded target has no cluster: migrate built a third of the schema, then every replicated
    table failed on ClickHouse's "Macro 'uuid' in engine arguments" (16 errors, 80 models skipped)."""
    env = {"ANALYTICS_CLUSTER": "analytics_cluster", "ANALYTICS_DATA_DIR": str(tmp_path / "data")}
    result = run_cli(*command, "--clickhouse-url", f"http://127.0.0.1:{refused_port}", env=env)
    assert result.returncode == 2, result.stderr
    said = "ANALYTICS_CLUSTER=analytics_cluster needs the server target (ANALYTICS_DBT_TARGET=server"
    assert said in result.stderr and not (tmp_path / "data").exists(), result.stderr


@pytest.mark.parametrize("command", [["migrate"], ["backfill", "--day", "2026-11-20"]], ids=["migrate", "backfill"])
def test_dbt_files_that_cannot_be_kept_are_named_in_one_line(refused_port, command):
    """dbt said only 'dbt build failed (exit 2); see the output above', with no output above."""
    result = run_cli(
        *command,
        "--clickhouse-url",
        f"http://127.0.0.1:{refused_port}",
        env={"ANALYTICS_DATA_DIR": "/proc/analytics-data"},
    )
    assert result.returncode == 1, result.stderr
    folder = "/proc/analytics-data/dbt"
    said = f"Error: cannot keep dbt's files in {folder} (under ANALYTICS_DATA_DIR): No such file or directory"
    assert result.stderr.splitlines() == [said]
