"""The embedded ClickHouse as a process: ownership of its data, security, shutdown and durability."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import urllib3

from core.settings.composed import Settings
from operations.dbt import dbt_executable
from tests import embedded_server

pytestmark = pytest.mark.long_file(21)  # seconds of a worker, measured: run first (tests/scheduling.py)

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=60))
ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analytics.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def sql(server, statement: str, **params) -> bytes:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = HTTP.request("POST", f"{server.url}/?{query}", body=statement.encode())
    assert response.status == 200, response.data
    return response.data


def test_help_lists_every_setting_and_its_variable():
    result = run_cli("--help")
    assert result.returncode == 0
    for variable in (
        "ANALYTICS_DATA_DIR",
        "ANALYTICS_CLICKHOUSE_HTTP_PORT",
        "ANALYTICS_CLICKHOUSE_PASSWORD",
        "ANALYTICS_KAFKA_BOOTSTRAP",
        "ANALYTICS_GRPC_PORT",
    ):
        assert variable in result.stdout
    assert "clickhouse" in run_cli("clickhouse", "--help").stdout


def test_invalid_setting_from_the_environment_is_named():
    result = run_cli("clickhouse", env={"ANALYTICS_CLICKHOUSE_HTTP_PORT": "eighty"})
    assert result.returncode != 0
    assert "ANALYTICS_CLICKHOUSE_HTTP_PORT" in result.stderr


@pytest.mark.parametrize(
    ("host", "named"),
    [
        ("127.0.0.1", "(ANALYTICS_CLICKHOUSE_HTTP_PORT): Address already in use; another process has it"),
        ("192.0.2.1", "(ANALYTICS_CLICKHOUSE_HOST): Cannot assign requested address"),
    ],
    ids=["port-taken", "not-this-machine"],
)
def test_an_address_it_cannot_listen_on_is_named_in_one_line_before_the_data_is_touched(tmp_path, host, named):
    """A taken port was found by uvicorn after chDB had opened the data directory, logged as "on
    http://HOST:PORT", then as uvicorn's own error, and ended with exit code 3."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli(
            "clickhouse",
            "--data-dir",
            str(tmp_path / "data"),
            "--host",
            host,
            "--password",
            "secret",
            "--http-port",
            str(port),
        )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"Error: cannot listen on {host}:{port} {named}"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_second_process_on_the_same_data_directory_gets_one_clear_line(tmp_path):
    data_dir = tmp_path / "data"
    first = embedded_server.start(data_dir)
    try:
        result = run_cli("clickhouse", "--data-dir", str(data_dir), "--http-port", str(embedded_server.free_port()))
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert str(data_dir.resolve()) in lines[0]
        assert f"process {first.process.pid}" in lines[0]
        assert "Traceback" not in result.stderr
        assert sql(first, "SELECT 1") == b"1\n"  # the owner is unaffected
    finally:
        first.stop()


def test_refuses_a_public_address_without_a_password(tmp_path):
    result = run_cli("clickhouse", "--data-dir", str(tmp_path / "d"), "--host", "0.0.0.0", "--http-port", "18123")
    assert result.returncode != 0
    assert "without a password" in result.stderr
    assert not (tmp_path / "d" / "status").exists()  # refused before chDB touched anything


def test_password_protects_every_way_of_authenticating(tmp_path):
    server = embedded_server.start(tmp_path / "data", password="s3cret")
    try:
        denied = HTTP.request("POST", server.url + "/", body=b"SELECT 1")
        assert denied.status == 403 and denied.headers["X-ClickHouse-Exception-Code"] == "516"
        assert HTTP.request("POST", server.url + "/?user=default&password=s3cret", body=b"SELECT 1").data == b"1\n"
        basic = urllib3.make_headers(basic_auth="default:s3cret")
        assert HTTP.request("POST", server.url + "/", body=b"SELECT 2", headers=basic).data == b"2\n"
        keyed = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "s3cret"}
        assert HTTP.request("POST", server.url + "/", body=b"SELECT 3", headers=keyed).data == b"3\n"
        wrong = urllib3.make_headers(basic_auth="default:guess")
        assert HTTP.request("POST", server.url + "/", body=b"SELECT 1", headers=wrong).status == 403
        assert server.client().command("SELECT 4") == 4
        # ClickHouse's /play sends `Authorization: never` (no credentials in the header: never prompt)
        # with its credentials in the URL; without them it is refused with 403, which prompts nobody.
        never = {"Authorization": "never"}
        taken = HTTP.request("POST", server.url + "/?user=default&password=s3cret", body=b"SELECT 5", headers=never)
        assert taken.data == b"5\n"
        assert HTTP.request("POST", server.url + "/", body=b"SELECT 1", headers=never).status == 403
        # A server answers exactly "/" without credentials (a load balancer's health check); it was 403.
        assert HTTP.request("GET", server.url + "/").data == b"Ok.\n"
        assert HTTP.request("HEAD", server.url + "/").status == 200
        assert HTTP.request("GET", server.url + "/?query=SELECT%201").status == 403
        assert HTTP.request("GET", server.url + "/?user=default&password=guess").status == 403
    finally:
        server.stop()


def test_sigterm_finishes_in_flight_requests_then_exits_cleanly(tmp_path):
    server = embedded_server.start(tmp_path / "data")
    outcome = {}

    def slow_query():
        outcome["response"] = HTTP.request("POST", server.url + "/", body=b"SELECT sleep(2), 'finished'")

    thread = threading.Thread(target=slow_query)
    thread.start()
    # Wait until the query is running, then ask the server to stop.
    for _ in range(400):
        processes = sql(server, "SELECT count() FROM system.processes WHERE query LIKE '%sleep(2)%'")
        if int(processes) >= 2:  # the slow query and this probe
            break
    server.process.send_signal(signal.SIGTERM)
    thread.join()
    assert outcome["response"].status == 200
    assert outcome["response"].data == b"0\tfinished\n"
    # uvicorn re-raises SIGTERM once it has shut down, so the exit status says "terminated by SIGTERM".
    assert server.process.wait(30) in (0, -signal.SIGTERM)
    assert "closed chDB and released" in server.log()


def test_a_stop_held_by_an_unfinished_request_names_it_in_the_log(tmp_path):
    server = embedded_server.start(tmp_path / "data")
    statement = "INSERT INTO default.t FORMAT TSV"
    held = socket.create_connection(("127.0.0.1", server.port))
    try:
        # Headers and half the promised body: the request stays in flight until the client goes.
        held.sendall(
            f"POST /?query={quote(statement)}&query_id=held-open HTTP/1.1\r\n"
            "Host: x\r\nContent-Length: 100\r\n\r\n1\n2\n".encode()
        )
        sql(server, "SELECT 1")  # the held request has reached the server before the stop
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while "still in flight" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.process.poll() is None  # the stop waits for it
    finally:
        held.close()
    assert server.process.wait(30) in (0, -signal.SIGTERM)
    log = server.log()
    assert "waiting for 1 request(s) still in flight" in log, log[-2000:]
    assert f"POST / {statement!r} from 127.0.0.1:" in log and "query_id=held-open" in log
    assert "closed chDB and released" in log


def test_data_survives_a_clean_restart(tmp_path):
    data_dir = tmp_path / "data"
    server = embedded_server.start(data_dir)
    sql(server, "CREATE TABLE default.kept (n UInt32) ENGINE = MergeTree ORDER BY n")
    sql(server, "INSERT INTO default.kept SELECT number FROM numbers(12345)")
    assert server.stop() in (0, -signal.SIGTERM)
    assert "closed chDB and released" in server.log()
    again = embedded_server.start(data_dir)
    try:
        assert sql(again, "SELECT count(), sum(n) FROM default.kept") == b"12345\t76193340\n"
    finally:
        again.stop()


def test_asynchronous_inserts_answered_before_their_batch_went_in_are_kept_by_a_clean_stop(tmp_path):
    """wait_for_async_insert=0 answers a sender at once; the batch waits out its busy timeout
    (30 s here) and was dropped by a stop within it. A ClickHouse server flushes its queue."""
    data_dir = tmp_path / "data"
    server = embedded_server.start(data_dir)
    sql(server, "CREATE TABLE default.waiting (batch UInt32, n UInt32) ENGINE = MergeTree ORDER BY (batch, n)")
    settings = (
        "async_insert=1&wait_for_async_insert=0&async_insert_use_adaptive_busy_timeout=0"
        "&async_insert_busy_timeout_ms=30000"
    )
    for batch in range(5):
        body = b"".join(b"%d\t%d\n" % (batch, i) for i in range(100))
        url = f"{server.url}/?query=INSERT%20INTO%20default.waiting%20FORMAT%20TSV&{settings}"
        assert HTTP.request("POST", url, body=body).status == 200
    assert server.stop() in (0, -signal.SIGTERM)
    again = embedded_server.start(data_dir)
    try:
        assert sql(again, "SELECT count(), uniqExact(batch) FROM default.waiting") == b"500\t5\n"
    finally:
        again.stop()


def test_acknowledged_inserts_survive_kill_9(tmp_path):
    data_dir = tmp_path / "data"
    server = embedded_server.start(data_dir)
    sql(server, "CREATE TABLE default.acked (batch UInt32, n UInt32) ENGINE = MergeTree ORDER BY (batch, n)")
    acknowledged = 0
    for batch in range(30):
        body = b"".join(b"%d\t%d\n" % (batch, i) for i in range(1000))
        response = HTTP.request("POST", f"{server.url}/?query=INSERT%20INTO%20default.acked%20FORMAT%20TSV", body=body)
        if response.status == 200:
            acknowledged += 1000
    server.stop(signal.SIGKILL)
    again = embedded_server.start(data_dir)
    try:
        assert int(sql(again, "SELECT count() FROM default.acked")) == acknowledged == 30_000
    finally:
        again.stop()


@pytest.mark.parametrize("runs", [2])
def test_dbt_build_passes_twice_in_a_row(clickhouse, runs):
    project = ROOT / "tests" / "fixtures" / "dbt_small"
    env = {"FIXTURE_CLICKHOUSE_PORT": str(clickhouse.port), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for _ in range(runs):
        result = subprocess.run(
            [
                dbt_executable(Settings()),
                "build",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
                "--target-path",
                str(clickhouse.data_dir.parent / "dbt_target"),
                "--log-path",
                str(clickhouse.data_dir.parent / "dbt_logs"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **env},
            cwd=project,
        )
        assert result.returncode == 0, result.stdout[-3000:]
        assert "PASS=12" in result.stdout and "ERROR=0" in result.stdout
    totals = sql(clickhouse, "SELECT customer_id, sum(events) FROM fixture.events_per_customer GROUP BY 1 ORDER BY 1")
    assert totals == b"1\t10\n2\t10\n3\t10\n"


def test_a_server_a_test_process_started_and_never_stopped_ends_with_it(tmp_path):
    """A fixture whose set-up fails after starting a server never reaches its teardown: such
    servers outlived the run (five of them, an hour later, after a schema that did not build)."""
    script = (
        "import sys\nfrom pathlib import Path\nfrom tests import embedded_server\n"
        f"server = embedded_server.start(Path({str(tmp_path / 'data')!r}))\n"
        "print(server.process.pid, flush=True)\nsys.exit(1)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    pid = int(result.stdout.split()[0])
    assert result.returncode == 1, result.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_commands_raise_the_open_files_limit_to_what_the_system_allows():
    """A shell's soft limit (256 here) ran out under ordinary load: the front dropped connections
    without a word and chDB failed queries with "Cannot open file"."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard <= 256:
        hard = 256  # nothing to raise to: the limit stays as it is

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    program = (
        "import contextlib, resource\n"
        "from analytics.cli import main\n"
        "with contextlib.suppress(SystemExit):\n"
        "    main(['topics', '--help'])\n"
        "print('soft limit', resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, preexec_fn=low_soft_limit, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"soft limit {hard}"
