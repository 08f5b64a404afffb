"""Dagster's webserver and daemon for the `orchestration` code location, as child processes.

`analytics up` runs them as a component next to the embedded ClickHouse; `analytics dagster`
runs them alone against the configured ClickHouse. The webserver serves the UI; the daemon runs
the schedules, the sensor and queued runs. Both read their settings from the ANALYTICS_*
variables they are given and keep their state in DAGSTER_HOME (DATA_DIR/dagster by default).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from core.children import obey_stop_signals_and_die_with_parent
from core.ports import url_host
from core.settings.composed import Settings
from embedded.data_lock import DataDirectoryError, DataDirectoryLock
from operations.dbt import PROJECT_ROOT

log = logging.getLogger(__name__)

INSTANCE_CONFIG = """\
# Written by `analytics`; edit freely, it is only created when missing.
telemetry:
  enabled: false
nux:
  enabled: false
# The health sensor ticks all day; old ticks go.
retention:
  schedule:
    purge_after_days: 30
  sensor:
    purge_after_days:
      skipped: 7
      failure: 30
      success: 7
# One rebuild at a time (daily_reconciliation's pool, analytics_rebuild): a backfill's runs wait for
# the slot, not for the rebuild lock, which gives up after 15 minutes. The project has no other pool.
concurrency:
  pools:
    default_limit: 1
# What the project's own code logs (a backfill waiting for the rebuild lock, say) shows in the run's log.
python_logs:
  python_log_level: INFO
  managed_python_loggers:
    - operations
"""


class DagsterStartError(RuntimeError):
    """The webserver or the daemon exited, or the webserver did not answer in time."""


class DagsterService:
    """A component of `analytics up`; start() returns at once, wait_until_serving() waits for the UI."""

    name = "dagster"

    def __init__(self, settings: Settings, start_timeout: float = 120.0, stop_timeout: float = 30.0):
        self.settings = settings
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.home = settings.resolved_dagster_home.resolve()
        self.processes: dict[str, subprocess.Popen] = {}
        self._stopping = threading.Event()
        self._lock = DataDirectoryLock(self.home)

    @property
    def url(self) -> str:
        host = self.settings.dagster_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{url_host(host)}:{self.settings.dagster_port}"

    def log_path(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self) -> None:
        """Prepare the instance, spawn the webserver and the daemon; a thread reports when the UI serves."""
        self._check_address()
        # The instance is this process's: a second daemon on it (`analytics dagster` beside `up` on
        # one data directory) ran every schedule and sensor twice, which Dagster does not support.
        try:
            self._lock.acquire()
        except DataDirectoryError as error:
            raise DagsterStartError(f"{error}: one Dagster a data directory") from None
        config = self.home / "dagster.yaml"
        if not config.exists():
            config.write_text(INSTANCE_CONFIG)
        bin_dir = Path(sys.executable).parent
        # The webserver and the daemon would both create a fresh instance's storage, and collide.
        migrate = subprocess.run(
            [str(bin_dir / "dagster"), "instance", "migrate"],
            env=self._environment(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise DagsterStartError(f"dagster instance migrate failed:\n{(migrate.stdout + migrate.stderr)[-4000:]}")
        settings = self.settings
        self._spawn(
            "webserver",
            [str(bin_dir / "dagster-webserver"), "-m", "orchestration"]
            + ["--host", settings.dagster_host, "--port", str(settings.dagster_port)],
        )
        self._spawn("daemon", [str(bin_dir / "dagster-daemon"), "run", "-m", "orchestration"])
        # Loading the code location takes a while; the rest of the stack need not wait for it.
        threading.Thread(target=self._report_start, name="dagster-start", daemon=True).start()

    def _check_address(self) -> None:
        """Refuse at once an address the webserver could not listen on; it would only say so after
        loading the code location, a minute on two cores. Anything this probe cannot judge the
        webserver reports itself."""
        host, port = self.settings.dagster_host, self.settings.dagster_port
        # The family uvicorn binds with: IPv6 for an address with a colon, else IPv4 ("localhost" too).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            family, kind, protocol, _, address = socket.getaddrinfo(
                host, port, family, socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
        except socket.gaierror as error:
            raise DagsterStartError(
                f"cannot listen on {host}: {error.strerror}; choose another with ANALYTICS_DAGSTER_HOST or --host"
            ) from None
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    # Otherwise another server on the port would answer for a webserver that failed to bind.
                    raise DagsterStartError(
                        f"port {port} on {host} is already in use; choose another with ANALYTICS_DAGSTER_PORT or --port"
                    ) from None
                if error.errno == errno.EADDRNOTAVAIL:
                    raise DagsterStartError(
                        f"cannot listen on {host}: no interface of this machine has that address;"
                        " choose another with ANALYTICS_DAGSTER_HOST or --host"
                    ) from None

    def _report_start(self) -> None:
        try:
            self.wait_until_serving()
            log.info("Dagster UI on %s (state and logs in %s)", self.url, self.home)
        except DagsterStartError as error:
            if not self._stopping.is_set():
                log.error("%s", error)

    def _environment(self) -> dict[str, str]:
        return {**os.environ, **self.settings.as_environment(), "DAGSTER_HOME": str(self.home)}

    def _spawn(self, name: str, args: list[str]) -> None:
        """Start a child from a thread of its own that waits for it: Linux stops the child (SIGTERM)
        when that thread ends, and so when `analytics` dies, even by kill -9. Orphans went on serving
        the UI and running a second daemon on the same instance."""
        environment = self._environment()
        started: queue.Queue = queue.Queue(maxsize=1)

        def keep() -> None:
            try:
                with open(self.log_path(name), "ab") as output:
                    process = subprocess.Popen(
                        args,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        env=environment,
                        cwd=PROJECT_ROOT,
                        # A session of its own: Ctrl-C in the terminal reaches `analytics`, which stops
                        # the children itself, in order, and their code servers with them.
                        start_new_session=True,
                        preexec_fn=obey_stop_signals_and_die_with_parent,
                    )
            except BaseException as error:  # noqa: BLE001 - raised in the spawning thread
                started.put(error)
                return
            started.put(process)
            process.wait()

        threading.Thread(target=keep, name=f"dagster-{name}", daemon=True).start()
        spawned = started.get()
        if isinstance(spawned, BaseException):
            raise spawned
        self.processes[name] = spawned

    def wait_until_serving(self) -> None:
        """Return once the webserver answers; raise DagsterStartError if a child exits or time runs out."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            for name, process in list(self.processes.items()):
                if process.poll() is not None:
                    raise DagsterStartError(
                        f"the Dagster {name} exited with {process.returncode}; its log:\n{self._tail(name)}"
                    )
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise DagsterStartError(
            f"the Dagster webserver did not answer on {self.url} within {self.start_timeout:.0f}s:\n"
            + self._tail("webserver")
        )

    def running(self) -> bool:
        """True while every child process is alive."""
        return bool(self.processes) and all(process.poll() is None for process in self.processes.values())

    def watch(self, failed) -> None:
        """Call ``failed(error)`` if the webserver or the daemon exits by itself, not on stop(): the
        stack went on with schedules and sensors silently stopped."""

        def wait_for_an_exit() -> None:
            while not self._stopping.wait(0.5):
                for name, process in list(self.processes.items()):
                    if process.poll() is not None and not self._stopping.is_set():
                        failed(
                            RuntimeError(f"the {name} exited with {process.returncode}; its log: {self.log_path(name)}")
                        )
                        return

        threading.Thread(target=wait_for_an_exit, name="dagster-watch", daemon=True).start()

    def stop(self) -> None:
        """SIGTERM to each child's process group, SIGKILL to what is left after stop_timeout."""
        self._stopping.set()
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for name, process in self.processes.items():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("the Dagster %s did not stop within %.0fs; killing it", name, self.stop_timeout)
                _signal_group(process, signal.SIGKILL)
                process.wait()
            # Its code server may outlive it for a moment; the group goes with it.
            _signal_group(process, signal.SIGKILL)
        self.processes.clear()
        self._lock.release()

    def _tail(self, name: str, characters: int = 4000) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace")[-characters:] if path.exists() else ""


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)
