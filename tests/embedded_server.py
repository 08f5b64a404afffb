"""Start and stop a real `analytics clickhouse` process for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
