"""`analytics up` serves the Dagster UI next to the embedded ClickHouse, and stops it on SIGTERM.

The browser test opens the asset graph in headless Chromium (Debian's package, never a
downloaded browser) and takes a screenshot of it in the test's own directory; with
UPDATE_SCREENSHOTS=1 it replaces the one the README shows (docs/dagster-asset-graph.png), which a
normal run never rewrites.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from analytics.components import dagster_component
from core.settings.composed import Settings
from tests.browser import CHROMIUM_ARGS
from tests.embedded_server import free_port

pytestmark = pytest.mark.long_file(37)  # seconds of a worker, measured: run first (tests/scheduling.py)

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "docs" / "dagster-asset-graph.png"


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc: the stack's ClickHouse, Dagster and their children."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid} (gone)"


def server_info(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """`analytics up` on free ports: ClickHouse, the schema, the Dagster webserver and daemon."""
    data_dir = tmp_path_factory.mktemp("up")
    dagster_port = free_port()
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ANALYTICS_")}
    environment.update(
        ANALYTICS_DATA_DIR=str(data_dir),
        ANALYTICS_CLICKHOUSE_HTTP_PORT=str(free_port()),
        ANALYTICS_GRPC_PORT=str(free_port()),
        ANALYTICS_DAGSTER_PORT=str(dagster_port),
    )
    log = open(data_dir / "up.log", "wb")  # noqa: SIM115 - the child writes it for its lifetime
    process = subprocess.Popen(
        [sys.executable, "-m", "analytics.cli", "up"], stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=REPO
    )
    url = f"http://127.0.0.1:{dagster_port}"
    deadline = time.monotonic() + 300
    while server_info(url) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("analytics up did not serve Dagster:\n" + (data_dir / "up.log").read_text()[-5000:])
        time.sleep(0.5)
    yield process, url, data_dir, dagster_port
    if process.poll() is None:  # a run without the SIGTERM test: stop it as that test does, children too
        children = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    log.close()


def test_up_serves_the_dagster_ui_with_its_home_in_the_data_directory(stack):
    _, url, data_dir, _ = stack
    assert server_info(url)["dagster_webserver_version"]
    home = data_dir / "dagster"
    assert (home / "dagster.yaml").exists()
    assert (home / "webserver.log").exists() and (home / "daemon.log").exists()


def test_up_gives_dagster_the_manifest_of_its_build_instead_of_parsing_again(stack):
    _, _, data_dir, _ = stack
    built = (data_dir / "dbt" / "target" / "fingerprint").read_text()
    assert (data_dir / "dbt" / "dagster" / "manifest" / "fingerprint").read_text() == built
    # A `dbt parse` for Dagster would have logged next to its manifest; the code location loaded without one.
    assert not (data_dir / "dbt" / "dagster" / "logs").exists()


@pytest.mark.browser
def test_the_asset_graph_renders_in_chromium(chromium, stack, tmp_path):  # chromium first: no stack when it skips
    from playwright.sync_api import expect, sync_playwright

    _, url, _, _ = stack
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})  # tall enough to fit the graph
            page.goto(f"{url}/asset-groups")
            for group in ("landing", "raw", "aggregates", "views"):
                expect(page.get_by_text(group, exact=True).first).to_be_visible(timeout=60_000)
            # The backfill's picture: the raw history and aggregates daily_reconciliation rebuilds from.
            page.goto(f"{url}/assets/daily_reconciliation?view=lineage&lineageScope=upstream&lineageDepth=1")
            for name in (
                "workflow_daily",
                "workflow_totals",
                "job_duration_daily",
                "workflow_events",
                "job_completions",
            ):
                expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=60_000)
            page.wait_for_load_state("networkidle")
            shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / SCREENSHOT.name
            page.screenshot(path=shot)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def run_analytics_dagster(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ANALYTICS_")}
    environment["ANALYTICS_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "analytics.cli", "dagster", *args],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_browser_tests_skip_without_chromium_except_in_ci(tmp_path, ci, outcome):
    environment = {**os.environ, "PATH": str(tmp_path), "CI": ci}
    test = "tests/test_dagster_ui.py::test_the_asset_graph_renders_in_chromium"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", test],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
        timeout=300,
    )
    assert outcome in run.stdout, run.stdout
    assert "chromium is not on PATH" in run.stdout or "chromium on PATH" in run.stdout


def test_analytics_dagster_refuses_a_port_in_use(stack, tmp_path):
    _, _, _, taken = stack
    result = run_analytics_dagster(tmp_path, "--port", str(taken))
    assert result.returncode == 1
    assert f"port {taken} on 127.0.0.1 is already in use" in result.stderr


def test_analytics_dagster_reports_an_instance_it_cannot_prepare(tmp_path):
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry: [this is not a mapping\n")
    result = run_analytics_dagster(tmp_path, "--port", str(free_port()))
    assert result.returncode == 1
    assert "dagster instance migrate failed" in result.stderr


def test_sigterm_stops_dagster_with_the_stack(stack):
    process, url, data_dir, _ = stack
    children = descendants(process.pid)
    assert children  # ClickHouse lives in `up` itself; these are Dagster's processes
    process.send_signal(signal.SIGTERM)
    # uvicorn re-raises SIGTERM once it has shut down, so the exit status may say "terminated by SIGTERM".
    assert process.wait(timeout=120) in (0, -signal.SIGTERM)
    assert server_info(url) is None
    # Killed processes may take a moment to finish exiting; none may stay behind.
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [command_line(pid) for pid in children if alive(pid)] == []
    log = (data_dir / "up.log").read_text()
    assert "stopping dagster" in log and "closed chDB and released" in log


def test_no_dagster_leaves_it_out_of_the_stack():
    assert dagster_component(Settings(dagster_enabled=False), engine=None) is None
    assert dagster_component(Settings(), engine=None).name == "dagster"


@pytest.mark.parametrize(
    ("host", "reason"),
    [("no-such-host.invalid", "cannot listen on no-such-host.invalid: "), ("192.0.2.1", "no interface of this")],
)
def test_analytics_dagster_refuses_an_address_it_cannot_listen_on_before_starting_anything(tmp_path, host, reason):
    result = run_analytics_dagster(tmp_path, "--host", host, "--port", str(free_port()))
    assert result.returncode == 1
    assert reason in result.stderr
    assert not (tmp_path / "dagster").exists()  # refused before the instance, the webserver or the daemon


def test_the_address_check_lets_through_what_the_webserver_can_listen_on(tmp_path):
    from analytics.dagster_service import DagsterService

    # "localhost" as uvicorn binds it (IPv4), whether or not the machine has IPv6.
    for host in ("localhost", "127.0.0.1", "0.0.0.0"):
        DagsterService(Settings(data_dir=tmp_path, dagster_host=host, dagster_port=free_port()))._check_address()


def test_analytics_dagster_reports_a_webserver_that_exits_and_stops_the_daemon(tmp_path):
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ANALYTICS_")}
    environment["ANALYTICS_DATA_DIR"] = str(tmp_path)
    command = [sys.executable, "-m", "analytics.cli", "dagster", "--port", str(free_port())]
    process = subprocess.Popen(command, env=environment, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (children := {pid: command_line(pid) for pid in descendants(process.pid)}) or not any(
            "dagster-daemon" in line for line in children.values()
        ):
            assert process.poll() is None and time.monotonic() < deadline, "the webserver and daemon never started"
            time.sleep(0.1)
        [webserver] = [pid for pid, line in children.items() if "dagster-webserver" in line]
        os.kill(webserver, signal.SIGKILL)  # a crash while it loads the code location
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    assert "the Dagster webserver exited with -9" in stderr
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [line for pid, line in children.items() if alive(pid)] == []  # the daemon went with it
    assert list((tmp_path / "dagster").glob("*.log"))  # the logs stay for the operator


def test_a_killed_analytics_dagster_takes_the_webserver_and_daemon_with_it(tmp_path):
    """After a kill -9 they went on: the orphan answered for the next `analytics dagster` on its
    port, and a second daemon ran the same instance's schedules."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ANALYTICS_")}
    environment["ANALYTICS_DATA_DIR"] = str(tmp_path)
    with open(tmp_path / "dagster-run.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "analytics.cli", "dagster", "--port", str(free_port())],
            env=environment,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240
        children: list[int] = []
        while len(children) < 2 and time.monotonic() < deadline and process.poll() is None:
            children = [pid for pid in descendants(process.pid) if "dagster-" in command_line(pid)]
            time.sleep(0.2)
        assert len(children) >= 2, (tmp_path / "dagster-run.log").read_text()[-3000:]
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [command_line(pid) for pid in children if alive(pid)]
    for pid in children:
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
    assert left == []


def test_a_webserver_or_daemon_that_exits_by_itself_is_reported_to_the_stack(tmp_path):
    """`up` did not notice its Dagster daemon killed: schedules and sensors silently stopped."""
    from analytics.dagster_service import DagsterService

    service = DagsterService(Settings(data_dir=tmp_path))
    children = {name: subprocess.Popen(["sleep", "60"], start_new_session=True) for name in ("webserver", "daemon")}
    service.processes = children  # as _spawn starts them: a process group each
    reported: list[BaseException] = []
    service.watch(reported.append)
    try:
        service.processes["daemon"].kill()
        deadline = time.monotonic() + 30
        while not reported:
            assert time.monotonic() < deadline, "the daemon's exit was not reported"
            time.sleep(0.1)
        assert str(reported[0]).startswith("the daemon exited with -9; its log: ")
    finally:
        service.stop()
    assert len(reported) == 1  # stop() itself reports nothing


def test_a_second_dagster_on_one_data_directory_is_refused_before_it_starts(tmp_path):
    """`analytics dagster` beside an `up` on the same data directory: two daemons ran one instance."""
    from analytics.dagster_service import DagsterService, DagsterStartError
    from embedded.data_lock import DataDirectoryLock

    settings = Settings(data_dir=tmp_path, dagster_port=free_port())
    held = DataDirectoryLock(settings.resolved_dagster_home)  # as the running one holds it
    held.acquire()
    try:
        with pytest.raises(DagsterStartError, match="is in use by .*: one Dagster a data directory"):
            DagsterService(settings).start()
    finally:
        held.release()
    assert not (settings.resolved_dagster_home / "dagster.yaml").exists()  # nothing of its own written
