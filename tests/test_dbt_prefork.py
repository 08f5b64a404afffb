"""The suite's forked dbt (tests/dbt_prefork.py) behaves as the installed dbt does: its output, its
exit codes, the caller's working directory and environment, and it dies with its caller."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import dbt_prefork

ROOT = Path(__file__).resolve().parent.parent
INSTALLED = str(Path(sys.executable).with_name("dbt"))


@pytest.fixture(scope="module")
def forked(tmp_path_factory) -> dbt_prefork.ForkedDbt:
    with dbt_prefork.started(tmp_path_factory.mktemp("prefork")) as dbt:
        yield dbt


def both(forked, *args: str, cwd: Path, **kwargs) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """The same command run by the launcher and by the installed dbt (which writes logs/ in ``cwd``)."""
    return tuple(
        subprocess.run([program, *args], capture_output=True, text=True, timeout=120, cwd=cwd, **kwargs)
        for program in (str(forked.launcher), INSTALLED)
    )


def test_the_session_runs_the_forked_dbt():
    assert Path(os.environ["ANALYTICS_DBT_EXECUTABLE"]).read_text().startswith(f"#!{sys.executable}\n")


def test_output_and_exit_codes_are_the_installed_dbts(forked, tmp_path):
    fork, installed = both(forked, "--version", cwd=tmp_path)
    assert fork.returncode == installed.returncode == 0
    assert "installed: " in fork.stdout and fork.stdout.splitlines()[:2] == installed.stdout.splitlines()[:2]
    fork, installed = both(forked, "parse", "--project-dir", "/no/such/project", cwd=tmp_path)
    assert fork.returncode == installed.returncode == 2
    assert "'/no/such/project' does not exist" in fork.stderr
    assert fork.stderr == installed.stderr


def test_the_callers_directory_and_environment_are_the_commands(forked, tmp_path):
    profiles = {**os.environ, "DBT_PROFILES_DIR": str(ROOT)}
    fork, installed = both(forked, "parse", cwd=tmp_path, env=profiles)
    assert fork.returncode == installed.returncode == 2
    assert f"{tmp_path}/dbt_project.yml" in fork.stdout  # dbt looked for a project where it was started
    fork, _ = both(forked, "parse", cwd=tmp_path, env={**profiles, "DBT_PROJECT_DIR": "/from/the/environment"})
    assert "'/from/the/environment' does not exist" in fork.stderr


def test_a_parse_by_the_warmed_up_server_is_the_installed_dbts(forked, tmp_path):
    # The server parsed the project once before forking (tests/dbt_prefork.py, _warm_up), with the
    # default vars; what a fork parses after it, with others, is what a fresh dbt process makes of it.
    manifests = []
    for program in (str(forked.launcher), INSTALLED):
        target = tmp_path / Path(program).name
        command = [program, "parse", "--project-dir", str(ROOT), "--profiles-dir", str(ROOT), "--target-path"]
        command += [str(target), "--vars", '{"cluster": "analytics"}']  # enables the Distributed tables
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-3000:]
        manifests.append(json.loads((target / "manifest.json").read_text()))
    fork, installed = ({key: strip(node) for key, node in m["nodes"].items()} for m in manifests)
    assert fork.keys() == installed.keys() and len(fork) > 80
    assert fork == installed
    assert "model.analytics.job_log_totals_all" in fork


def strip(node: dict) -> dict:
    """A parsed node without what differs from one parse to another (times, paths of the target)."""
    return {key: value for key, value in node.items() if key not in ("created_at", "build_path")}


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "terminated"])
def test_the_forked_dbt_dies_with_its_launcher(forked, tmp_path, stop):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers: dbt waits
    command = [str(forked.launcher), "debug", "--project-dir", str(ROOT), "--profiles-dir", str(ROOT)]
    env = {**os.environ, "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(silent.getsockname()[1])}
    helpers = set(children(forked.server_pid))  # the server's own: multiprocessing's resource tracker
    launcher = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (running := [pid for pid in children(forked.server_pid) if pid not in helpers]):
            assert time.monotonic() < deadline, "no dbt was forked"
            time.sleep(0.05)
        os.kill(launcher.pid, stop)
        assert launcher.wait(timeout=30) == -stop
        deadline = time.monotonic() + 10
        while alive := [pid for pid in running if Path(f"/proc/{pid}").exists()]:
            assert time.monotonic() < deadline, f"dbt {alive} outlived its launcher"
            time.sleep(0.05)
    finally:
        launcher.kill()
        launcher.wait()
        silent.close()
