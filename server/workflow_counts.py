"""What the serving model holds of each workflow, and the answers computed from a user's workflows.

Pure functions over ``{workflow id: WorkflowCounts}``, and the listing orders kept for them
(ListingOrders); server/serving.py keeps them fresh and decides when they may answer.
"""

from __future__ import annotations

import itertools
import sys
import threading
from bisect import bisect_right

from server.pagination import Position
from server.queries import WorkflowRow

# One workflow's all-time counters and its kind now (its latest event naming one), at these
# positions. A plain tuple of ints and a str, not a NamedTuple: the collector stops tracking such
# tuples, where a million tracked ones would make each of its full passes walk them all.
WorkflowCounts = tuple[int, int, int, int, int, int, str]
JOBS, JOBLOGS, SECONDS, COMPLETED, FAILED, CANCELLED, KIND = range(7)

# Counters summed over workflows: how many, then jobs, joblogs, seconds, completed, failed, cancelled.
Counters = tuple[int, int, int, int, int, int, int]
# What a listing may sort by, as the position of the counter in WorkflowCounts.
SORTED_BY = {"jobs": JOBS, "joblogs": JOBLOGS, "job_execution_duration": SECONDS}


def counts_of(row) -> WorkflowCounts:
    """A workflow's counters and kind from a row of the model's read (after its two keys)."""
    jobs, joblogs, seconds, completed, failed, cancelled, kind = row
    # Interned: a handful of kinds shared by a million workflows.
    return (int(jobs), int(joblogs), int(seconds), int(completed), int(failed), int(cancelled), sys.intern(kind))


def add_up(workflows) -> Counters:
    """How many workflows, then each of their counters summed (100,000 workflows: about 20 ms)."""
    count = jobs = joblogs = seconds = completed = failed = cancelled = 0
    for (
        workflow_jobs,
        workflow_joblogs,
        workflow_seconds,
        workflow_completed,
        workflow_failed,
        workflow_cancelled,
        _,
    ) in workflows:
        count += 1
        jobs += workflow_jobs
        joblogs += workflow_joblogs
        seconds += workflow_seconds
        completed += workflow_completed
        failed += workflow_failed
        cancelled += workflow_cancelled
    return (count, jobs, joblogs, seconds, completed, failed, cancelled)


def of_kind(by_workflow: dict[str, WorkflowCounts], kind: str) -> Counters:
    """The counters of a user's workflows of one kind (zeros when none is of it)."""
    return add_up([counts for counts in by_workflow.values() if counts[KIND] == kind])


def listing_order(by_workflow: dict[str, WorkflowCounts], sort: str, ascending: bool) -> list[tuple[int, str]]:
    """Each workflow's key in the listing's order, sorted: (value of ``sort``, workflow id), the value
    negated when descending, so that the order is always ascending and "after the previous page" is
    simply greater than its last key. Workflow ids are unique, so no two keys tie; they compare as
    ClickHouse compares them (UTF-8's byte order is its code points' order).
    """
    index, sign = SORTED_BY[sort], 1 if ascending else -1
    return sorted((sign * counts[index], workflow_id) for workflow_id, counts in by_workflow.items())


def page(
    by_workflow: dict[str, WorkflowCounts],
    order: list[tuple[int, str]],
    kind: str | None,
    sort: str,
    ascending: bool,
    after: Position | None,
    limit: int,
) -> list[WorkflowRow]:
    """A page of a user's workflows as Queries.list_workflows gives it (sorted by ``sort``, then
    workflow id; only those of ``kind``; strictly after ``after``), from their ``order``."""
    start = 0
    if after is not None:
        start = bisect_right(order, ((1 if ascending else -1) * after.value, after.workflow_id))
    rows: list[WorkflowRow] = []
    for _, workflow_id in itertools.islice(order, start, None):
        if len(rows) >= limit:
            break
        counts = by_workflow[workflow_id]
        if kind is None or counts[KIND] == kind:
            rows.append(WorkflowRow(workflow_id, counts[KIND], *counts[:KIND]))
    return rows


class ListingOrders:
    """The listing orders of the users listed lately, so that a page costs its rows, not a sort.

    An order is kept with the dict of workflows it was sorted from and used only while the user's
    workflows are that same dict: the serving model never changes a dict it has published, it
    replaces a user's whole (and calls ``forget``). At most ``max_keys`` keys are kept in all, the
    orders sorted longest ago dropped first.
    """

    def __init__(self, max_keys: int = 500_000):
        self.max_keys = max_keys
        self._orders: dict[tuple[str, str, bool], tuple[dict[str, WorkflowCounts], list[tuple[int, str]]]] = {}
        self._keys = 0
        self._lock = threading.Lock()

    def of(self, user_id: str, by_workflow: dict[str, WorkflowCounts], sort: str, ascending: bool):
        """The user's workflows in the listing's order (listing_order), sorted now or kept."""
        key = (user_id, sort, ascending)
        kept = self._orders.get(key)
        if kept is not None and kept[0] is by_workflow:
            return kept[1]
        order = listing_order(by_workflow, sort, ascending)
        with self._lock:
            self._drop(key)
            self._orders[key] = (by_workflow, order)
            self._keys += len(order)
            while self._keys > self.max_keys and len(self._orders) > 1:
                self._drop(next(iter(self._orders)))
        return order

    def forget(self, user_ids) -> None:
        """Drop the orders of these users (their workflows changed): a poll's cost, not the kept orders'."""
        with self._lock:
            for user_id in user_ids:
                for sort in SORTED_BY:
                    self._drop((user_id, sort, True))
                    self._drop((user_id, sort, False))

    def forget_all(self) -> None:
        with self._lock:
            self._orders, self._keys = {}, 0

    def _drop(self, key) -> None:
        dropped = self._orders.pop(key, None)
        if dropped is not None:
            self._keys -= len(dropped[1])
