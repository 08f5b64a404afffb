"""What the serving model may answer, given what it knows of the writes and of the calls it left
to ClickHouse (server/serving.py describes the model; these are its rules of freshness).

Besides the bound (over HTTP) or read-your-writes (in `analytics up`), one more rule: a call the
model could not answer went to ClickHouse, which may hold writes the model has not read yet, so
a later call is answered here only from a read sent after that call went (waiting for one, at
most as long as for the writes). Without it a counter read from ClickHouse and then from the
model went down between two calls: 89 to 132 times a minute on a loaded server over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable

from core.backend import WriteLog


class Stale(Exception):
    """The model cannot answer within its staleness bound (not loaded yet, or its feed is behind)."""


class Behind(Stale):
    """The model has not read far enough (or at all) to answer now; ClickHouse may know more."""


class TooMany(Stale):
    """The answer needs more of a user's workflows than the model goes through in one call."""


class Freshness:
    """The freshness checks of ServingModel, which sets the attributes they read: ``off``,
    ``max_staleness``, ``_clock``, ``_writes``, ``_fresh_as_of``, ``_floor``, ``_covered``,
    ``_loading``, ``_failing``, ``_applied`` (a Condition notified after each applied read) and
    ``_wake`` (an Event that makes the feed read now)."""

    def answered_elsewhere(self, stale: Stale) -> None:
        """A call the model could not answer goes to ClickHouse now: after one it was too far
        behind for (Behind), no later answer comes from a state read before this moment. Calls
        it never answers (TooMany, cut buckets, the model off) leave the others alone."""
        if not isinstance(stale, Behind):
            return
        with self._applied:  # two calls at once: the later moment stays
            now = self._clock()
            if self._floor is None or now > self._floor:
                self._floor = now

    def staleness(self) -> float | None:
        """Seconds since the newest applied read was sent; None before the first one."""
        return None if self._fresh_as_of is None else self._clock() - self._fresh_as_of

    def _check_fresh(self, timeout: float) -> None:
        if self.off is not None:
            raise Stale(self.off)
        if self._writes is None:
            self._check_bound()
        else:
            self._check_writes_read(self._writes, timeout)
        self._check_floor(timeout)

    def _past_floor(self) -> bool:
        floor, fresh = self._floor, self._fresh_as_of
        return floor is None or (fresh is not None and fresh >= floor)

    def _check_floor(self, timeout: float) -> None:
        """Answer only from a read sent after the last call that went to ClickHouse."""
        if self._past_floor():
            return
        self._wake.set()
        if not self._wait_for_read(self._past_floor, timeout):
            raise Behind("a call went to ClickHouse after the serving model's newest read")

    def _check_bound(self) -> None:
        age = self.staleness()
        if age is None:
            raise Behind("the serving model is not loaded")
        if age > self.max_staleness:
            raise Behind(f"the serving model is {age:.3f}s old")

    def _check_writes_read(self, writes: WriteLog, timeout: float) -> None:
        covered = self._covered
        if covered is None:
            raise Behind("the serving model is not loaded")
        wanted = writes.counts()
        if self._has_read(wanted):
            return
        self._wake.set()  # the feed reads now, for every lookup waiting
        if wanted[1] > covered[1]:
            raise Behind("a write no insert announces changed the data: the serving model reads everything again")
        if self._loading:
            raise Behind("the serving model is reading everything again")  # seconds at scale: not worth a wait
        if self._failing:
            raise Behind("the serving model's newest read failed")
        if not self._wait_for_read(lambda: self._has_read(wanted), timeout):
            raise Behind("the serving model has not read the newest inserts in time")

    def _wait_for_read(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait for an applied read that makes ``done`` true (at most the bound, or half the call's
        deadline; less if a read fails or the model turns off); whether it came."""
        with self._applied:
            wait = min(self.max_staleness, timeout / 2)
            self._applied.wait_for(lambda: done() or self._failing or self.off is not None, wait)
            return done()

    def _has_read(self, wanted: tuple[int, int]) -> bool:
        covered = self._covered
        return covered is not None and wanted[0] <= covered[0] and wanted[1] <= covered[1]
