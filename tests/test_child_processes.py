"""core.children: a child started by a parent that ignores or blocks the stop signals still obeys them."""

from __future__ import annotations

import contextlib
import signal
import subprocess

from core.children import obey_stop_signals, obey_stop_signals_and_die_with_parent

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def ignoring_and_blocking_the_stop_signals():
    """The parent as a background job of a script is (SIGINT ignored), or a pytest-xdist worker
    after Dagster ran in-process (SIGTERM ignored too); and with SIGTERM blocked in this thread."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def child_signal_state(preexec_fn) -> dict[str, set[int]]:
    """The signals a child process ignores and blocks, as Linux reports them (/proc/self/status)."""
    with ignoring_and_blocking_the_stop_signals():
        status = subprocess.run(
            ["cat", "/proc/self/status"], preexec_fn=preexec_fn, capture_output=True, text=True, check=True
        ).stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return {
        name: {number for number in range(1, 65) if int(fields[name], 16) >> (number - 1) & 1}
        for name in ("SigIgn", "SigBlk")
    }


def test_the_parents_ignored_and_blocked_stop_signals_do_not_reach_the_child():
    inherited = child_signal_state(None)
    assert {signal.SIGTERM, signal.SIGINT} <= inherited["SigIgn"]  # what the children would get without the reset
    assert signal.SIGTERM in inherited["SigBlk"]
    for reset in (obey_stop_signals, obey_stop_signals_and_die_with_parent):
        state = child_signal_state(reset)
        assert not {signal.SIGTERM, signal.SIGINT} & state["SigIgn"], reset.__name__
        assert state["SigBlk"] == set(), reset.__name__


def test_a_killed_migrate_takes_its_dbt_with_it(tmp_path):
    """A SIGKILLed (or stopped) `analytics migrate` left dbt building the schema on its own."""
    import os
    import sys
    import time
    from pathlib import Path

    from tests import embedded_server

    server = embedded_server.start(tmp_path / "clickhouse")
    try:
        migrate = subprocess.Popen(
            [sys.executable, "-m", "analytics.cli", "migrate"],
            cwd=Path(__file__).resolve().parent.parent,
            env={
                **os.environ,
                "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(server.port),
                "ANALYTICS_DATA_DIR": str(tmp_path / "state"),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        dbt = None
        deadline = time.monotonic() + 120
        while dbt is None and time.monotonic() < deadline and migrate.poll() is None:
            children = Path(f"/proc/{migrate.pid}/task/{migrate.pid}/children").read_text().split()
            dbt = next((int(pid) for pid in children if "dbt" in Path(f"/proc/{pid}/cmdline").read_text()), None)
            time.sleep(0.05)
        assert dbt is not None, "migrate never started dbt"
        migrate.kill()
        migrate.wait(30)
        deadline = time.monotonic() + 5  # a schema's build takes ten times that
        while Path(f"/proc/{dbt}").exists() and time.monotonic() < deadline:
            if Path(f"/proc/{dbt}/stat").read_text().split(") ")[1].startswith("Z"):
                break  # a zombie: it has died, and only waits to be reaped
            time.sleep(0.1)
        alive = Path(f"/proc/{dbt}").exists() and not Path(f"/proc/{dbt}/stat").read_text().split(") ")[1].startswith(
            "Z"
        )
        if alive:
            os.kill(dbt, signal.SIGKILL)
        assert not alive, "dbt went on after its migrate was killed"
    finally:
        server.stop()
