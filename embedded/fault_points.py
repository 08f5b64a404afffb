"""Fault points: places in the bridge where a test can make it fail on purpose, to force the
crash windows that would otherwise only happen by chance. Off unless the environment names one.

    ANALYTICS_FAULT_POINT=<point>:<action>[:<topic>]
    ANALYTICS_FAULT_MARKER=<file>      written when the point is reached (optional)

points   batch_taken     a batch is taken from Kafka and not yet inserted
         batch_inserted  the batch is in ClickHouse and its offsets not yet committed
actions  kill            the process dies at once (SIGKILL: no clean-up, no commit)
         hold            the consumer waits there until the bridge is asked to stop (SIGTERM)
topic    only that topic's consumer stops there (default: the first consumer to arrive)

Each point fires once per process. Production never sets these variables; README lists them.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)

POINTS = ("batch_taken", "batch_inserted")
ACTIONS = ("kill", "hold")
HOLD_SECONDS = 600.0


class FaultPointError(ValueError):
    """ANALYTICS_FAULT_POINT names no point or action this module has."""


_fired = threading.Event()
_lock = threading.Lock()


@functools.cache
def _configured() -> tuple[str, str, str] | None:
    spec = os.environ.get("ANALYTICS_FAULT_POINT", "")
    if not spec:
        return None
    point, _, rest = spec.partition(":")
    action, _, topic = rest.partition(":")
    if point not in POINTS or action not in ACTIONS:
        raise FaultPointError(
            f"ANALYTICS_FAULT_POINT={spec!r}: expected <point>:<action>[:<topic>] with a point of "
            f"{', '.join(POINTS)} and an action of {', '.join(ACTIONS)}"
        )
    return point, action, topic


def check() -> None:
    """Raise FaultPointError for a malformed ANALYTICS_FAULT_POINT: at start, not at the first point reached."""
    _configured()


def reach(point: str, topic: str, stop: threading.Event) -> None:
    """Called by the bridge at ``point``; does nothing unless a test switched that point on."""
    configured = _configured()
    if configured is None or configured[0] != point or configured[2] not in ("", topic):
        return
    with _lock:
        if _fired.is_set():
            return
        _fired.set()
    log.warning("fault point %s reached on topic %s: %s", point, topic, configured[1])
    marker = os.environ.get("ANALYTICS_FAULT_MARKER")
    if marker:
        Path(marker).write_text(f"{point} {topic}\n")
    if configured[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    stop.wait(HOLD_SECONDS)
