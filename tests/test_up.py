"""`analytics up` as a user runs it: one process, the schema built, components started and stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import urllib3

from analytics_proto import analytics_pb2 as pb
from analytics_proto.analytics_pb2_grpc import AnalyticsServiceStub
from tests import embedded_server
from tests.intake import HTTP
from tests.test_dagster_ui import command_line, descendants
from tests.test_metrics import scrape

pytestmark = pytest.mark.long_file(33)  # seconds of a worker, measured: run first (tests/scheduling.py)

ROOT = Path(__file__).resolve().parent.parent


def start_up(tmp_path: Path, *flags: str, new_session: bool = False, **env: str) -> tuple[subprocess.Popen, int, Path]:
    port = embedded_server.free_port()
    log = tmp_path / "up.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "analytics.cli", "up", "--no-dagster", *flags],
        cwd=ROOT,
        stdout=open(log, "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=new_session,  # a process group of its own, as a terminal's job has
        env={
            **os.environ,
            "ANALYTICS_DATA_DIR": str(tmp_path / "data"),
            "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(port),
            "ANALYTICS_GRPC_PORT": str(embedded_server.free_port()),
            "ANALYTICS_DAGSTER_PORT": str(embedded_server.free_port()),
            "ANALYTICS_DEMO_RATE": "200",
            **env,
        },
    )
    return process, port, log


def sql(port: int, statement: str) -> str:
    """The answer, or "" while the server is not listening yet or the schema is still being built."""
    try:
        response = HTTP.request("POST", f"http://127.0.0.1:{port}/", body=statement.encode(), retries=False)
    except urllib3.exceptions.HTTPError:
        return ""
    return response.data.decode().strip() if response.status == 200 else ""


def wait_for(condition, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.25)


def stop(process: subprocess.Popen, log: Path) -> str:
    process.send_signal(signal.SIGTERM)
    assert process.wait(90) in (0, -signal.SIGTERM), log.read_text()[-4000:]
    return log.read_text()


def test_up_with_demo_traffic_shows_numbers_then_stops_in_order(tmp_path):
    process, port, log = start_up(tmp_path, "--demo")
    try:
        wait_for(
            lambda: (sql(port, "SELECT sum(total_jobs) FROM analytics.user_totals") or "0") not in ("0", ""),
            process,
            log,
        )
    finally:
        text = stop(process, log)
    assert text.index("stopping demo traffic") < text.index("closed chDB and released")


@pytest.mark.parametrize("how", ["SIGTERM to up", "Ctrl-C in its terminal"])
def test_a_stop_asked_during_the_schema_build_lets_the_build_end_then_stops(tmp_path, how):
    """SIGTERM while dbt built the schema said the build would end first, yet up exited within a
    second and dbt stopped mid-node; a terminal's Ctrl-C reached dbt too (its process group)."""
    process, _, log = start_up(tmp_path, new_session=True)
    try:
        wait_for(lambda: "building the schema" in log.read_text(), process, log)
        time.sleep(1)  # dbt has started on the nodes
    finally:
        if how == "SIGTERM to up":
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)  # a terminal signals its whole foreground group
        # uvicorn raises the signal again once all has stopped: SIGTERM ends the process, Ctrl-C is 0
        assert process.wait(120) in (0, -signal.SIGTERM), log.read_text()[-4000:]
    text = log.read_text()
    assert "Aborted!" not in text  # click's word for a Ctrl-C it did not expect
    asked = text.index("the start-up step under way ends first")
    assert asked < text.index("the schema is built") < text.index("stopping before the stack was up"), text[-4000:]
    assert "the stack is up" not in text
    results = json.loads((tmp_path / "data" / "dbt" / "target" / "run_results.json").read_text())["results"]
    assert results and {result["status"] for result in results} <= {"success", "pass"}, results


def answers_for_a_user(stub: AnalyticsServiceStub, port: int) -> bool:
    """GetUserAnalytics answers for a user with jobs. A new user's events reach the totals last of
    the views an insert runs through, and the answer counts them once that insert has ended."""
    user = sql(port, "SELECT any(user_id) FROM analytics.user_totals WHERE total_jobs > 0")
    if not user:
        return False
    try:
        return stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=10).total_jobs > 0
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return False


@pytest.mark.kafka
def test_up_with_kafka_ingests_through_a_local_broker_and_serves_every_parts_metrics(tmp_path, kafka_jars):
    grpc_port = embedded_server.free_port()
    process, port, log = start_up(
        tmp_path,
        "--with-kafka",
        "--demo",
        ANALYTICS_KAFKA_PORT=str(embedded_server.free_port()),
        ANALYTICS_GRPC_PORT=str(grpc_port),
    )
    try:
        wait_for(
            lambda: (
                (sql(port, "SELECT countIf(kafka_offset IS NOT NULL) FROM analytics.job_events") or "0")
                not in ("0", "")
            ),
            process,
            log,
        )
        # One endpoint carries the HTTP interface's, the bridge's and the gRPC service's metrics.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            wait_for(lambda: answers_for_a_user(AnalyticsServiceStub(channel), port), process, log)
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert sum(samples[key] for key in samples if key[0] == "analytics_bridge_inserted_total") >= 1
        assert sum(samples[key] for key in samples if key[0] == "analytics_grpc_requests_total") >= 1
        assert sum(samples[key] for key in samples if key[0] == "analytics_http_requests_total") >= 1
    finally:
        text = stop(process, log)
    order = [text.index(f"stopping {name}") for name in ("demo traffic", "Kafka bridge", "local Kafka")]
    assert order == sorted(order)
    assert "stay uncommitted" not in text  # the bridge finished its batch before ClickHouse stopped


@pytest.mark.kafka
def test_a_local_broker_that_dies_stops_up_with_exit_status_1(tmp_path, kafka_jars):
    """`up --with-kafka` went on when its broker died (a crash, or out of memory: the JVM exits on
    it), with only the bridge's timeouts in the log, and nothing for a supervisor to restart."""
    process, port, log = start_up(tmp_path, "--with-kafka", ANALYTICS_KAFKA_PORT=str(embedded_server.free_port()))
    try:
        wait_for(lambda: "the stack is up" in log.read_text(), process, log)
        [jvm] = [pid for pid in descendants(process.pid) if "kafka.Kafka" in command_line(pid)]
        os.kill(jvm, signal.SIGKILL)
        assert process.wait(120) == 1, log.read_text()[-4000:]
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert "local Kafka stopped: the broker exited with -9; its log: " in text, text[-4000:]
    assert "Error: the stack stopped because a part of it failed; see the log above" in text


@pytest.mark.parametrize(
    "variable", ["ANALYTICS_GRPC_PORT", "ANALYTICS_DAGSTER_PORT", "ANALYTICS_CLICKHOUSE_HTTP_PORT"]
)
def test_a_port_another_process_listens_on_is_refused_before_anything_starts(tmp_path, variable):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process, _, log = start_up(tmp_path, "--dagster", **{variable: str(port)})
        assert process.wait(60) == 1
    output = log.read_text()
    assert f"cannot listen on 127.0.0.1:{port} ({variable}): Address already in use" in output, output
    assert not (tmp_path / "data" / "clickhouse").exists()  # refused before the server touched its data


def test_a_metrics_port_another_process_listens_on_is_refused_before_anything_starts(tmp_path):
    """It was found after the schema's build, about a minute in, naming no variable."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process, _, log = start_up(tmp_path, ANALYTICS_GRPC_METRICS_PORT=str(port))
        assert process.wait(60) == 1
    output = log.read_text()
    assert f"cannot listen on 127.0.0.1:{port} (ANALYTICS_GRPC_METRICS_PORT): Address already in use" in output
    assert not (tmp_path / "data" / "clickhouse").exists()


def test_one_port_given_to_two_parts_is_refused_before_anything_starts(tmp_path):
    port = str(embedded_server.free_port())
    process, _, log = start_up(tmp_path, ANALYTICS_CLICKHOUSE_HTTP_PORT=port, ANALYTICS_GRPC_PORT=port)
    assert process.wait(60) == 1
    output = log.read_text()
    assert f"ANALYTICS_GRPC_PORT and ANALYTICS_CLICKHOUSE_HTTP_PORT are both {port}" in output, output
    assert not (tmp_path / "data" / "clickhouse").exists()


def test_a_clickhouse_url_is_refused_as_up_runs_its_own(tmp_path):
    """With the variable exported for other commands, up built the schema in that ClickHouse and served nothing."""
    process, _, log = start_up(tmp_path, ANALYTICS_CLICKHOUSE_URL="http://127.0.0.1:1")
    assert process.wait(60) == 1
    output = log.read_text()
    assert "`analytics up` runs its own ClickHouse" in output and "ANALYTICS_CLICKHOUSE_URL" in output, output
    assert not (tmp_path / "data" / "clickhouse").exists()


def test_up_demo_sends_where_analytics_demo_sink_says(tmp_path):
    """`up --demo` chose kafka or ClickHouse by ANALYTICS_KAFKA_BOOTSTRAP alone and left the variable unread."""
    process, _, log = start_up(tmp_path, "--demo", ANALYTICS_DEMO_SINK="logger")
    try:
        wait_for(lambda: "demo traffic: about" in log.read_text(), process, log)
    finally:
        text = stop(process, log)
    said = next(line for line in text.splitlines() if "demo traffic: about" in line)
    assert said.endswith("users to the log"), said


def test_up_demo_to_kafka_without_a_broker_is_refused_before_anything_starts(tmp_path):
    """With ANALYTICS_DEMO_SINK=kafka and no broker, the demo sent to ClickHouse instead, unsaid."""
    process, _, log = start_up(tmp_path, "--demo", ANALYTICS_DEMO_SINK="kafka")
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        stop(process, log)
        pytest.fail("up --demo started with ANALYTICS_DEMO_SINK=kafka and no Kafka")
    assert process.returncode == 2, log.read_text()
    assert (
        "ANALYTICS_DEMO_SINK=kafka needs a Kafka: set ANALYTICS_KAFKA_BOOTSTRAP or add --with-kafka" in log.read_text()
    )
    assert not (tmp_path / "data").exists()
