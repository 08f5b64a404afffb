"""A failure that repeats every turn of a loop (ClickHouse down, polled ten times a second) is
logged when it starts, then once a minute with how often it happened since, and its end once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

EVERY_S = 60.0


class RepeatedFailure:
    def __init__(self, log: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic):
        self.log = log
        self.what = what
        self.clock = clock
        self.since_logged = 0  # failures not logged since the last line
        self.logged_at: float | None = None  # None: not failing

    def failed(self, error: object) -> None:
        now = self.clock()
        if self.logged_at is not None and now - self.logged_at < EVERY_S:
            self.since_logged += 1
            return
        again = f" ({self.since_logged} more times since the last line)" if self.logged_at is not None else ""
        self.log.warning("%s: %s%s", self.what, error, again)
        self.logged_at, self.since_logged = now, 0

    def succeeded(self) -> None:
        if self.logged_at is not None:
            self.log.warning("%s: works again", self.what)
            self.logged_at, self.since_logged = None, 0
