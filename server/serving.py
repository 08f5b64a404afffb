"""The serving model: every workflow's and user's all-time totals in memory, fresh within a bound.

A lookup answered from a dict costs what the gRPC transport costs, where any ClickHouse
statement costs more (its parse, analysis and plan, about a millisecond even for ``SELECT 1``).
The model stays exact by re-reading, never by adding up deltas:

* at start it reads workflow_totals whole (summed per key), in a thread of its own; until that
  is done every lookup goes to ClickHouse;
* every ``interval`` seconds a poll reads the newest block number of workflow_changes (a
  materialized view on workflow_totals that lists the keys each insert touched), then re-reads
  the summed totals of the keys in the blocks committed since the poll before the previous one:
  block numbers follow commit order, so no insert is missed however long it ran, and reading
  the previous poll's blocks again covers a totals part that committed a moment after its
  changes part; re-reading a key twice changes nothing;
* every ``full_refresh`` seconds it reads everything again, in case rows changed in ways no
  insert announces (a table truncated by hand); the poll after such a read re-reads the blocks
  since the read before it, as the poll after a poll does.

Which answers it may give depends on what it knows of the writes:

* With the backend's WriteLog (the chDB of `analytics up`, where every write passes the HTTP
  front, which counts it before answering): read-your-writes. A lookup notes the writes
  finished so far; if the model has not read them all, it wakes the feed and waits for a read
  that began after them (at most the bound, or half its own deadline), else raises Stale. A
  write no insert announces (ALTER, TRUNCATE...) makes the feed read everything again, and the
  lookups go to ClickHouse until it has. With no writes the model needs no reads to stay exact.
* Without one (a ClickHouse others write to): a bound. A lookup is answered here only while
  the newest read that completed was sent at most ``max_staleness`` seconds ago; otherwise it
  raises Stale. An answer then never reflects a state older than that bound, whatever the load.

Besides the two original lookups, the model answers what needs a user's workflows over all
time: the listing of a user's workflows, the counters of a details answer and, for a user as a
whole, its duration percentiles (server/extended.py). Those it reads as ClickHouse merges them
(quantilesTDigestMerge over the user's digests in job_duration_daily), at start for every user
and at each poll for the users of the changed keys: an insert into job_duration_daily announces
its keys in workflow_changes too. Each user's time series it reads the same way, every bucket of
every granularity (server/series.py). A workflow's or a kind's percentiles or series, and ranges
of days that cut a bucket, read the daily tables.

On Stale the caller asks ClickHouse.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.backend import QueryBackend, QueryFailed, WriteLog
from core.repeated_log import RepeatedFailure
from server.pagination import Position
from server.queries import Totals, WorkflowRow
from server.series import HeldSeries, bucket_start, series_of, uncut
from server.serving_fresh import Freshness, Stale, TooMany
from server.serving_reads import (
    CHANGED_USERS_PERCENTILES,
    CHANGED_USERS_SERIES,
    CHANGED_WORKFLOWS,
    EVERY_USERS_PERCENTILES,
    EVERY_WORKFLOW,
    NEWEST_BLOCK,
    OTHER_CHANGES,
    PENDING_MUTATIONS,
    SERIES_BUCKETS,
    every_users_series,
    one_number,
    users_percentiles,
)
from server.validation import Period
from server.workflow_counts import (
    JOBLOGS,
    JOBS,
    KIND,
    SECONDS,
    Counters,
    ListingOrders,
    WorkflowCounts,
    add_up,
    counts_of,
    of_kind,
    page,
)

log = logging.getLogger(__name__)

Percentiles = tuple[float, float, float, float]


# A listing, or a kind's counters, goes through every workflow of the user in Python, holding the
# interpreter (about 1 µs a workflow): beyond this many ClickHouse sorts them faster, and without
# holding up the other calls (measured with a user of 100,000: 115 ms here, 43 ms in ClickHouse).
SCANNED_AT_MOST = 10_000


class ServingModel(Freshness):
    def __init__(
        self,
        backend: QueryBackend,
        max_staleness: float = 1.0,
        interval: float = 0.1,
        full_refresh: float = 600.0,
        query_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_workflows: int = 2_000_000,
        scanned_at_most: int = SCANNED_AT_MOST,
        max_series_points: int = 3_000_000,
        series_part: int = 250_000,
    ):
        self._backend = backend
        self.max_workflows = max_workflows
        self.scanned_at_most = scanned_at_most
        self.max_staleness = max_staleness
        self.interval = interval
        self.full_refresh = full_refresh
        self._timeout = query_timeout
        self._clock = clock
        self._writes: WriteLog | None = backend.writes
        # user -> {workflow -> counts}; user -> counts. Replaced whole on a full read, and user by
        # user by polls: a user's dict of workflows is never changed once in place, so readers need
        # no lock, and a listing order sorted from it holds while it is there.
        self._workflows: dict[str, dict[str, WorkflowCounts]] = {}
        self._orders = ListingOrders()
        self._users: dict[str, Counters] = {}
        # user -> duration percentiles over all time; a user without a finished job has none.
        self._percentiles: dict[str, Percentiles] = {}
        self.series = HeldSeries(max_series_points)  # each user's buckets over all time
        self.series_part = series_part
        self._held = 0  # workflows in _workflows
        self.off: str | None = None  # why the model has turned itself off for good, if it has
        self._fresh_as_of: float | None = None  # our clock when the newest applied read was sent
        self._other_changes: int | None = None  # over HTTP: OTHER_CHANGES as the newest full read found it
        self._floor: float | None = None  # our clock when a call last went to ClickHouse instead
        # Newest block of workflow_changes at the previous read and at the one before it.
        self._blocks: tuple[int, int] | None = None
        self._loaded_at = 0.0
        # The WriteLog's (inserts, changes) before the newest applied read began (a poll: inserts only).
        self._covered: tuple[int, int] | None = None
        self._failing = False  # the newest read failed
        self._mutation_pending = False  # the newest full read saw a mutation of workflow_totals running
        self._loading = False  # a full read is running
        self._applied = threading.Condition()  # notified after every applied read
        self._wake = threading.Event()  # a lookup waits for a read: do it now
        self._stop = threading.Event()
        self._failures = RepeatedFailure(log, "serving model: read failed (lookups go to ClickHouse meanwhile)")
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.failures = 0

    @property
    def promise(self) -> str:
        """What its answers promise, for the log."""
        if self._writes is None:
            return f"at most {self.max_staleness}s old"
        return f"read-your-writes (a lookup waits at most {self.max_staleness}s for the model to catch up)"

    # -- answers ----------------------------------------------------------------------------------
    def workflow_totals(self, user_id: str, workflow_id: str, timeout: float) -> Totals | None:
        """One workflow's totals (None: unknown), or Stale; waits at most half of ``timeout``."""
        self._check_fresh(timeout)
        counts = self._unless_off(self._workflows.get(user_id, {}).get(workflow_id))
        return None if counts is None else Totals(1, counts[JOBS], counts[JOBLOGS], counts[SECONDS])

    def user_totals(self, user_id: str, timeout: float) -> Totals | None:
        """A user's totals (None: unknown), or Stale; waits at most half of ``timeout``."""
        self._check_fresh(timeout)
        counters = self._unless_off(self._users.get(user_id))
        return None if counters is None else Totals(*counters[:4])

    def known(self, user_id: str, workflow_id: str | None, timeout: float) -> bool:
        """Whether the user (and that workflow of the user) has any analytics, or Stale."""
        self._check_fresh(timeout)
        by_workflow = self._unless_off(self._workflows.get(user_id))
        return by_workflow is not None and (workflow_id is None or workflow_id in by_workflow)

    def counters(self, user_id: str, workflow_id: str | None, kind: str | None, timeout: float):
        """(kind, Counters) of a user, of one workflow of the user, or of the user's workflows of one
        kind, over all time; None when the user (or the workflow) is unknown; or Stale.

        kind in the answer is the workflow's when one is asked for, else empty. A kind no workflow
        has gives zeros, as Queries.summary does. A kind's counters of a user of more than
        ``scanned_at_most`` workflows raise TooMany (a Stale): ClickHouse adds them up.
        """
        self._check_fresh(timeout)
        by_workflow = self._unless_off(self._workflows.get(user_id))
        if by_workflow is None:
            return None
        if workflow_id is not None:
            counts = by_workflow.get(workflow_id)
            return None if counts is None else (counts[KIND], (1, *counts[:KIND]))
        if kind is None:
            # A poll adds a new user's workflows before it sums them: then add them up here.
            counters = self._users.get(user_id)
            return "", counters if counters is not None else add_up(by_workflow.values())
        self._check_scan(by_workflow)
        return "", of_kind(by_workflow, kind)

    def details(self, user_id: str, timeout: float) -> tuple[Counters, Percentiles | None] | None:
        """A user's counters and duration percentiles over all time (None: the user is unknown), or Stale."""
        found = self.counters(user_id, None, None, timeout)
        return None if found is None else (found[1], self._unless_off(self._percentiles.get(user_id)))

    def _unless_off(self, found):
        """What a lookup found after its freshness check, unless the model has turned itself off
        since: it sets ``off`` before emptying its maps, so a lookup that read an emptied one sees it."""
        if self.off is not None:
            raise Stale(self.off)
        return found

    def _check_scan(self, by_workflow: dict[str, WorkflowCounts]) -> None:
        if len(by_workflow) > self.scanned_at_most:
            raise TooMany(f"more than {self.scanned_at_most:,} workflows to go through")

    def list_workflows(
        self,
        user_id: str,
        kind: str | None,
        sort: str,
        ascending: bool,
        after: Position | None,
        limit: int,
        timeout: float,
    ) -> list[WorkflowRow] | None:
        """A page of the user's workflows over all time, as Queries.list_workflows gives it (see
        workflow_counts.page); None when the user is unknown; or Stale (TooMany beyond
        ``scanned_at_most`` workflows). The order is sorted once while the user's workflows stay."""
        self._check_fresh(timeout)
        by_workflow = self._unless_off(self._workflows.get(user_id))
        if by_workflow is None:
            return None
        self._check_scan(by_workflow)
        order = self._orders.of(user_id, by_workflow, sort, ascending)
        return page(by_workflow, order, kind, sort, ascending, after, limit)

    def time_series(self, user_id: str, granularity: str, period: Period, timeout: float):
        """A user's buckets of ``granularity`` over the days of ``period``, oldest first, as
        Queries.time_series gives them (none for an unknown user); or Stale (also when
        the period cuts a bucket in two, or the model holds no series)."""
        if self.series.off is not None:
            raise Stale(self.series.off)
        if not uncut(period, granularity):
            raise Stale(f"the days asked for cut a {granularity} in two")
        self._check_fresh(timeout)
        series = self.series.of(user_id, granularity)
        if self.series.off is not None:  # turned off (and emptied) by the read this call waited for
            raise Stale(self.series.off)
        return [] if series is None else series.points(bucket_start(period.first, granularity), period.last)

    @property
    def workflows(self) -> int:
        return self._held

    # -- reads from ClickHouse --------------------------------------------------------------------
    def _counts(self) -> tuple[int, int]:
        return (0, 0) if self._writes is None else self._writes.counts()

    def _applied_read(self, sent: float, covered: tuple[int, int]) -> None:
        with self._applied:
            self._fresh_as_of, self._covered, self._failing = sent, covered, False
            self._applied.notify_all()

    def load(self) -> None:
        """Read every workflow's totals and replace the model with them."""
        self._loading = True
        try:
            self._load()
        finally:
            self._loading = False

    def _load(self) -> None:
        sent = self._clock()
        counts = self._counts()  # before the reads: every write counted here is in what they see
        # Read before the rows: a mutation done by now is in them, one still running is not.
        pending = self._writes is not None and one_number(self._backend, PENDING_MUTATIONS, self._timeout)
        if self._writes is None:
            self._other_changes = one_number(self._backend, OTHER_CHANGES, self._timeout)
        newest = one_number(self._backend, NEWEST_BLOCK, self._timeout)
        rows = self._backend.rows(EVERY_WORKFLOW, {"limit": self.max_workflows + 1}, self._timeout)
        if len(rows) > self.max_workflows:
            self._turn_off(f"ClickHouse holds more than {self.max_workflows:,} workflows")
            return
        workflows: dict[str, dict[str, WorkflowCounts]] = {}
        for row in rows:
            workflows.setdefault(row[0], {})[row[1]] = counts_of(row[2:])
        users = {user_id: add_up(by_workflow.values()) for user_id, by_workflow in workflows.items()}
        percentiles = users_percentiles(self._backend, EVERY_USERS_PERCENTILES, {}, self._timeout)
        # Counted first: beyond the bound the buckets are not read at all (a long history of many
        # users), and within it they are read in parts of at most about ``series_part`` buckets.
        buckets = one_number(self._backend, SERIES_BUCKETS, self._timeout)
        self.series.check_points(buckets)
        series = {} if self.series.off else every_users_series(self._backend, buckets, self.series_part, self._timeout)
        self._workflows, self._users, self._held = workflows, users, len(rows)
        self._orders.forget_all()
        self._percentiles = percentiles
        self.series.replace_all(series)
        # The next poll reads again what committed since the read before this one, as a poll would:
        # a totals part that commits a moment after its changes part (block <= newest) may have
        # missed this read. A first read has none before it.
        before = newest if self._blocks is None else min(self._blocks[1], newest)
        self._blocks, self._loaded_at = (before, newest), sent
        if pending:
            # Not covering the newest change keeps lookups on ClickHouse and has the next turn read again.
            counts = (counts[0], counts[1] - 1)
            if not self._mutation_pending:
                log.info(
                    "serving model: a mutation of the tables it reads is running; "
                    "lookups ask ClickHouse until it is done"
                )
        else:
            took = self._clock() - sent
            log.info("serving model: %d workflows of %d users read in %.1fs", len(rows), len(users), took)
        self._mutation_pending = bool(pending)
        self._applied_read(sent, counts)

    def poll(self) -> int:
        """Re-read the keys of the blocks committed since the poll before the previous one."""
        if self._blocks is None:
            self.load()
            return 0
        sent = self._clock()
        inserts, _ = self._counts()
        newest = one_number(self._backend, NEWEST_BLOCK, self._timeout)
        before_previous, previous = self._blocks
        blocks = {"after": before_previous, "upto": newest}
        rows = self._backend.rows(CHANGED_WORKFLOWS, blocks, self._timeout)
        percentiles = users_percentiles(self._backend, CHANGED_USERS_PERCENTILES, blocks, self._timeout)
        series = {} if self.series.off else series_of(self._backend.rows(CHANGED_USERS_SERIES, blocks, self._timeout))
        changed: dict[str, dict[str, WorkflowCounts]] = {}  # each changed user's workflows, copied
        for row in rows:
            by_workflow = changed.get(row[0])
            if by_workflow is None:
                by_workflow = changed[row[0]] = dict(self._workflows.get(row[0], {}))
            self._held += row[1] not in by_workflow
            by_workflow[row[1]] = counts_of(row[2:])
        if self._held > self.max_workflows:
            self._turn_off(f"new workflows took it past {self.max_workflows:,}")
            return len(rows)
        self._workflows.update(changed)
        self._orders.forget(changed.keys())
        # A user's counts are re-added from their workflows: exact, and 100,000 workflows take ~20 ms.
        for user_id in changed:
            self._users[user_id] = add_up(self._workflows[user_id].values())
            if user_id not in percentiles:
                self._percentiles.pop(user_id, None)  # its digests are gone, or it never had any
        self._percentiles.update(percentiles)
        self.series.replace(changed.keys() | series.keys(), series)
        self._blocks = (previous, newest)
        assert self._covered is not None  # set by the load before any poll
        self._applied_read(sent, (inserts, self._covered[1]))
        self.polls += 1
        if len(rows) > 10_000:
            log.info("serving model: %d changed workflows re-read in %.1fs", len(rows), self._clock() - sent)
        return len(rows)

    # -- the feed ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="serving-model", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """One turn of the feed: read everything, the changed keys, or (nothing written) nothing."""
        started = self._clock()
        if self._covered is None or started - self._loaded_at >= self.full_refresh:
            self.load()
            return
        if self._writes is None:
            # Others write unseen: a change other than an insert (a DELETE, a TRUNCATE) is read whole.
            if one_number(self._backend, OTHER_CHANGES, self._timeout) != self._other_changes:
                self.load()
            else:
                self.poll()
            return
        inserts, changes = counts = self._writes.counts()
        if changes > self._covered[1]:
            self.load()
        elif inserts > self._covered[0]:
            self.poll()
        else:
            self._applied_read(started, counts)  # nothing written since the newest read: still exact

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            self._wake.clear()
            try:
                self.refresh()
                self._failures.succeeded()
            except QueryFailed as error:
                # Lookups go to ClickHouse meanwhile; the next turn tries again.
                self._read_failed()
                self._failures.failed(error)
            except Exception:  # noqa: BLE001 - the feed must outlive any one bad read
                self._read_failed()
                log.exception("serving model: read failed")
            self._wake.wait(max(0.0, self.interval - (self._clock() - started)))

    def _turn_off(self, why: str) -> None:
        """More workflows than it may hold: free the memory, stop the feed, leave lookups to ClickHouse."""
        self.off = f"the serving model is off: {why} (ANALYTICS_GRPC_SERVING_MAX_WORKFLOWS)"
        log.warning("%s; lookups ask ClickHouse", self.off)
        self._workflows, self._users, self._percentiles, self._held = {}, {}, {}, 0
        self._orders.forget_all()
        self.series.clear()
        self._stop.set()
        with self._applied:
            self._applied.notify_all()

    def _read_failed(self) -> None:
        self.failures += 1
        with self._applied:
            self._failing = True
            self._applied.notify_all()  # the lookups waiting for this read go to ClickHouse now

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout + 5)
