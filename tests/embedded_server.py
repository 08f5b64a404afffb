"""Start and stop a real `analytics clickhouse` process for tests and benchmarks."""

from __future__ import annotations

import atexit
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Ports for the servers tests start, below the kernel's ephemeral range (32768-60999 on Linux), so
# no outgoing connection and no other worker takes one between its choice and its server's bind:
# each pytest-xdist worker has a slice of its own, whose ports a process hands out in turn.
PORTS_FROM, SLICE = 20_000, 1_000


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1"... under xdist
    number = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 8
    first = PORTS_FROM + (number % 12) * SLICE
    return range(first, first + SLICE)


_PORTS = _slice()
_next = random.randrange(len(_PORTS))  # another run on the machine starts elsewhere in the slice


def free_port() -> int:
    """The next port of this worker's slice that nothing is bound to now."""
    global _next
    for _ in range(len(_PORTS)):
        port = _PORTS[_next % len(_PORTS)]
        _next += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port left in {_PORTS.start}-{_PORTS.stop - 1}")


@dataclass
class EmbeddedClickHouse:
    """A running embedded ClickHouse process."""

    data_dir: Path
    port: int
    process: subprocess.Popen
    log_path: Path
    password: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, **overrides):
        """Settings for this server with the session's state directory (conftest's `analytics_db` migrates
        with them): dbt finds its parse of the project there, and parses again only what changed."""
        from core.settings.composed import Settings

        return Settings(clickhouse_http_port=self.port, data_dir=self.data_dir.parent / "state", **overrides)

    def client(self, **kwargs):
        import clickhouse_connect

        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, password=self.password, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        return stop_process(self.process, sig, timeout)


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    """Send ``sig``, kill after ``timeout`` seconds, and return the exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def stopped_at_exit(process: subprocess.Popen) -> subprocess.Popen:
    """``process``, stopped when the test process ends if nothing stopped it before: a fixture whose
    set-up fails after starting it never reaches its teardown, and the server outlived the run."""
    atexit.register(stop_process, process, signal.SIGTERM, 10.0)
    return process


def start(
    data_dir: Path,
    port: int | None = None,
    *extra_args: str,
    password: str = "",
    env: dict | None = None,
    wait: bool = True,
) -> EmbeddedClickHouse:
    """Run `analytics clickhouse` on a free loopback port and wait until /ping answers."""
    port = port or free_port()
    log_path = Path(data_dir).with_name(Path(data_dir).name + f".{port}.log")
    args = [sys.executable, "-m", "analytics.cli", "clickhouse", "--data-dir", str(data_dir), "--http-port", str(port)]
    if password:
        args += ["--password", password]
    args += list(extra_args)
    log_file = open(log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
    process = subprocess.Popen(
        args,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parent.parent,
    )
    stopped_at_exit(process)
    server = EmbeddedClickHouse(Path(data_dir), port, process, log_path, password)
    if wait:
        wait_until_ready(server)
    return server


def wait_until_ready(server: EmbeddedClickHouse, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"embedded ClickHouse exited with {server.process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/ping", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"embedded ClickHouse did not answer within {timeout}s:\n{server.log()}")
