"""Long-lived child processes (Kafka's JVM) that obey a stop signal whatever their parent ignores.

A child inherits the signals its parent ignores (an ignored signal stays ignored across exec) and
the signals its parent's thread blocks. Parents do ignore them: a job that a script starts in the
background ignores SIGINT, and Dagster, run in-process, gives SIGTERM the handler SIGINT has, so
SIGTERM is then ignored as well (a pytest-xdist worker, which ignores SIGINT, is one such parent).
A Kafka JVM started there never runs its shutdown hook: stop() waits out its timeout and kills the
broker, which then recovers its logs on the next start. So the children are reset before exec.

The functions run in the child between fork and exec (``preexec_fn``): they only make system
calls, through a C library loaded before any fork. Elsewhere than Linux they do nothing.
"""

from __future__ import annotations

import ctypes
import signal
import sys

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_SIG_SETMASK = 2
_NO_SIGNALS = ctypes.create_string_buffer(128)  # a sigset_t with no signal in it
_PR_SET_PDEATHSIG = 1


def obey_stop_signals() -> None:
    """In the child: SIGTERM and SIGINT back to their default action, and no signal blocked."""
    if _LIBC is None:
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        _LIBC.signal(int(sig), None)  # None is the null pointer, SIG_DFL
    _LIBC.sigprocmask(_SIG_SETMASK, _NO_SIGNALS, None)


def obey_stop_signals_and_die_with_parent() -> None:
    """In the child: as obey_stop_signals, and Linux sends it SIGTERM if its owner dies, so none is orphaned."""
    if _LIBC is None:
        return
    obey_stop_signals()
    _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
