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
