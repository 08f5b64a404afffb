"""Rules of the suite itself: under CI a skip fails, long files run first, helpers leave nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.grpc_server import HeldRelay

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 failed"), ("", "1 skipped")])
def test_a_skip_fails_under_ci(tmp_path, ci, outcome):
    (tmp_path / "test_skips.py").write_text("import pytest\n\ndef test_skips():\n    pytest.skip('no tool here')\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.ci_rules",
            "-q",
            str(tmp_path / "test_skips.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CI": ci, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert outcome in run.stdout, run.stdout
    if ci:
        assert "skipped under CI" in run.stdout and "no tool here" in run.stdout


def test_long_files_run_first_longest_first_under_xdist(tmp_path):
    # The short file has the most tests: xdist's own order (by number of tests) would run it first.
    record = "import os\n\ndef record(name):\n    open(os.environ['RAN'], 'a').write(name + '\\n')\n\n"
    tests = "".join(f"def test_{n}():\n    record(__name__ + '::{n}')\n\n" for n in ("one", "two", "three"))
    (tmp_path / "test_a_short.py").write_text(record + tests)
    for name, seconds in (("test_b_long", 60), ("test_c_longer", 90)):
        marker = f"import pytest\n\npytestmark = pytest.mark.long_file({seconds})\n\n"
        (tmp_path / f"{name}.py").write_text(marker + record + f"def test_only():\n    record('{name}::only')\n")
    ran = tmp_path / "ran.txt"
    run = subprocess.run(
        # The repository's configuration (its addopts), as `./dev test` runs it, on one worker.
        [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "-p", "no:cacheprovider"]
        + ["-p", "no:randomly", "-p", "tests.scheduling", "-n", "1", "-q", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "RAN": str(ran)},
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert ran.read_text().split() == [
        "test_c_longer::only",
        "test_b_long::only",
        "test_a_short::one",
        "test_a_short::two",
        "test_a_short::three",
    ], run.stdout


def test_a_closed_relay_ends_its_held_connection_to_the_server():
    # A relay closed with a request held must not leave the server half a request to wait on: the
    # session's ClickHouse waits for requests in flight before it stops (30 s at the end of the run).
    with socket.create_server(("127.0.0.1", 0)) as server:
        relay = HeldRelay(server.getsockname()[1])
        relay.hold()
        client = socket.create_connection(("127.0.0.1", relay.port))
        client.sendall(b"POST / HTTP/1.1\r\nHost: clickhouse\r\nContent-Length: 100\r\n\r\nselect")
        upstream, _ = server.accept()
        assert relay.request_seen.wait(10)
        relay.close()  # the held bytes may pass now; then both ends are closed
        upstream.settimeout(10)
        received = b""
        while chunk := upstream.recv(65536):  # b"" (the relay's FIN), not a timeout
            received += chunk
        assert received in (b"", b"POST / HTTP/1.1\r\nHost: clickhouse\r\nContent-Length: 100\r\n\r\nselect")
        upstream.close()
        client.close()
