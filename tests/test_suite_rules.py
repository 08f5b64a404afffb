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


def test_long_files_are_collected_first_longest_first(tmp_path):
    (tmp_path / "test_a_short.py").write_text("def test_one():\n    pass\n")
    for name, seconds in (("test_b_long", 60), ("test_c_longer", 90)):
        (tmp_path / f"{name}.py").write_text(
            f"import pytest\n\npytestmark = pytest.mark.long_file({seconds})\n\n"
            "def test_first():\n    pass\n\ndef test_second():\n    pass\n"
        )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.scheduling", "--collect-only", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    collected = [line for line in run.stdout.splitlines() if "::" in line]
    assert collected == [
        "test_c_longer.py::test_first",
        "test_c_longer.py::test_second",
        "test_b_long.py::test_first",
        "test_b_long.py::test_second",
        "test_a_short.py::test_one",
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
