"""The service's queries over the aggregates of the dbt schema (dbt_project/models/aggregates).

Counters are summed over a key's rows, because AggregatingMergeTree parts merge in the
background and a key may still have several rows. Every value is a server-side parameter;
the only SQL chosen per request are fixed fragments (a filter present or not, a sort column
from a closed list).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from core import names
from core.backend import QueryBackend, QueryFailed, QueryTimedOut, Value
from core.names import distributed, qualified, sql
from server.pagination import Position
from server.validation import Period

# What each time-series granularity groups the days by. A week's Monday as a Date32: the week of
# 1970-01-01 (a Thursday) begins on 1969-12-29, which Date (and so toMonday) cannot hold.
BUCKETS = {"day": "day", "week": "toDate32(day) - (toDayOfWeek(day) - 1)", "month": "toStartOfMonth(day)"}
# What ListWorkflowAnalytics can sort by.
SORT_COLUMNS = {
    "jobs": "total_jobs",
    "job_execution_duration": "total_job_execution_duration",
    "joblogs": "total_joblogs",
}

TOTALS = qualified(names.WORKFLOW_TOTALS)
DAILY = qualified(names.WORKFLOW_DAILY)
DURATIONS = qualified(names.JOB_DURATION_DAILY)

# A workflow's kind now, over its rows: they keep (time, kind) of the latest event naming one
# (dbt_project/macros/counters.sql), so the max is the latest kind, not the largest.
KIND = "tupleElement(max(kind), 2)"

PERCENTILES = "quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(duration_seconds_quantiles)"
# As Float64, as the summary's UNION ALL gives them (its other branches' column is Float64).
PERCENTILES_FLOAT64 = f"cast({PERCENTILES} as Array(Float64))"

# The original contract's two calls: point lookups on workflow_totals (ORDER BY user_id, workflow_id).
USER_TOTALS = sql("""select
    uniqExact(workflow_id),
    toInt64(sum(jobs)),
    toInt64(sum(joblogs)),
    toInt64(sum(job_execution_seconds))
from $workflow_totals
where user_id = {user_id:String}""")

WORKFLOW_TOTALS = sql("""select
    count(),
    toInt64(sum(jobs)),
    toInt64(sum(joblogs)),
    toInt64(sum(job_execution_seconds))
from $workflow_totals
where user_id = {user_id:String} and workflow_id = {workflow_id:String}""")

# Observes (query name, seconds, outcome) for the metrics; outcome is ok, timeout or error.
QueryObserver = Callable[[str, float, str], None]


@dataclass(frozen=True)
class Totals:
    workflows: int
    jobs: int
    joblogs: int
    seconds: int


@dataclass(frozen=True)
class Summary:
    workflows: int
    jobs: int
    joblogs: int
    seconds: int
    completed: int
    failed: int
    cancelled: int
    percentiles: tuple[float, float, float, float] | None  # p50, p90, p95, p99; None: no finished job


class WorkflowRow(NamedTuple):
    """A listed workflow (a NamedTuple: a page of them is built per call, and a frozen dataclass
    costs three times as much to build)."""

    workflow_id: str
    kind: str
    jobs: int
    joblogs: int
    seconds: int
    completed: int
    failed: int
    cancelled: int

    def sort_value(self, sort: str) -> int:
        return {"jobs": self.jobs, "job_execution_duration": self.seconds, "joblogs": self.joblogs}[sort]


@dataclass(frozen=True)
class Scope:
    """Whose analytics: a user, optionally one workflow or the workflows of one kind, over some days."""

    user_id: str
    workflow_id: str | None = None
    kind: str | None = None
    period: Period = Period()

    def condition(self) -> str:
        """WHERE condition on workflow_daily or job_duration_daily."""
        parts = ["user_id = {user_id:String}", "day between {first_day:Date} and {last_day:Date}"]
        if self.workflow_id is not None:
            parts.append("workflow_id = {workflow_id:String}")
        if self.kind is not None:
            parts.append(self.of_kind())
        return "\n      and ".join(parts)

    def of_kind(self) -> str:
        """Whether a row's workflow is of the scope's kind: its kind now (its latest event naming one,
        kept in workflow_totals), on every day."""
        if self.kind is None:
            return "1"
        return (
            f"workflow_id in (select workflow_id from {TOTALS}"
            f" where user_id = {{user_id:String}} group by workflow_id having {KIND} = {{kind:String}})"
        )

    def params(self) -> dict[str, Value]:
        params: dict[str, Value] = {
            "user_id": self.user_id,
            "first_day": self.period.first,
            "last_day": self.period.last,
        }
        if self.workflow_id is not None:
            params["workflow_id"] = self.workflow_id
        if self.kind is not None:
            params["kind"] = self.kind
        return params


# The counters of workflow_daily and workflow_totals behind a summary, in its order.
MEASURES = ("jobs", "joblogs", "job_execution_seconds", "jobs_completed", "jobs_failed", "jobs_cancelled")
# The columns of a UNION ALL branch without counters or without percentiles (each named: a
# branch may not hold two columns of one name).
ZERO_COUNTERS = "toUInt64(0) as no_workflows, " + ", ".join(f"toInt64(0) as no_{name}" for name in MEASURES)
NO_PERCENTILES = "cast([], 'Array(Float64)') as no_percentiles"
# One workflow's counters, summed over its rows in workflow_daily or workflow_totals (the same columns).
WORKFLOW_COUNTERS = """
            toInt64(sum(jobs)) as total_jobs,
            toInt64(sum(joblogs)) as total_joblogs,
            toInt64(sum(job_execution_seconds)) as total_job_execution_duration,
            toInt64(sum(jobs_completed)) as completed,
            toInt64(sum(jobs_failed)) as failed,
            toInt64(sum(jobs_cancelled)) as cancelled"""
COUNTER_NAMES = "total_jobs, total_joblogs, total_job_execution_duration, completed, failed, cancelled"
LISTED_NAMES = f"workflow_id, kind, {COUNTER_NAMES}"
# A summary's counters over several workflows: how many, then their counters summed.
COUNTER_COLUMNS = "uniqExact(workflow_id) as total_workflows," + WORKFLOW_COUNTERS


def percentiles_of(values) -> tuple[float, float, float, float] | None:
    # An empty digest gives NaN (JSON null); a bucket without durations has none.
    if not values or any(value is None for value in values):
        return None
    return tuple(float(value) for value in values)


def _summary(row: list) -> Summary:
    return Summary(*(int(value) for value in row[:7]), percentiles_of(row[7]))


# On a cluster every shard's tables are read through the Distributed table `<name>_all`.
_SHARDED = re.compile(rf"\b{names.DATABASE}\.({'|'.join(names.SHARDED)})\b")


def on_cluster(sql: str) -> str:
    return _SHARDED.sub(lambda match: qualified(distributed(match.group(1))), sql)


class Queries:
    def __init__(self, backend: QueryBackend, observe: QueryObserver | None = None, cluster: bool = False):
        self.backend = backend
        self._observe = observe or (lambda name, seconds, outcome: None)
        self._cluster = cluster

    def rows(self, name: str, sql: str, params: dict[str, Value], timeout: float) -> list[list]:
        """Run one named SELECT (timed for the metrics), on a cluster over the Distributed tables."""
        if self._cluster:
            sql = on_cluster(sql)
        start = time.perf_counter()
        outcome = "error"
        try:
            rows = self.backend.rows(sql, params, timeout)
            outcome = "ok"
            return rows
        except QueryFailed as error:
            outcome = "timeout" if isinstance(error, QueryTimedOut) else "error"
            raise
        finally:
            self._observe(name, time.perf_counter() - start, outcome)

    # -- the original contract ------------------------------------------------------------------
    def user_totals(self, user_id: str, timeout: float) -> Totals | None:
        """All-time totals of a user; None when the user has no analytics."""
        [row] = self.rows("user_totals", USER_TOTALS, {"user_id": user_id}, timeout)
        return Totals(*map(int, row)) if row[0] else None

    def workflow_totals(self, user_id: str, workflow_id: str, timeout: float) -> Totals | None:
        """All-time totals of one workflow of a user; None when it is not the user's or unknown."""
        [row] = self.rows("workflow_totals", WORKFLOW_TOTALS, {"user_id": user_id, "workflow_id": workflow_id}, timeout)
        return Totals(1, *map(int, row[1:])) if row[0] else None

    # -- details --------------------------------------------------------------------------------
    def summary(self, scope: Scope, timeout: float) -> tuple[str, Summary] | None:
        """(kind, summary) of a scope; None when the user (or the user's workflow) is unknown.

        kind is the workflow's when the scope is one workflow, else empty. Over every day the
        counters come from workflow_totals, which holds each workflow's counters of every day
        (reconciliation keeps the two in line) in one row, where workflow_daily has a row per day;
        a date range reads workflow_daily. The percentiles come from job_duration_daily.
        """
        identity = "user_id = {user_id:String}"
        if scope.workflow_id is not None:
            identity += " and workflow_id = {workflow_id:String}"
        if scope.period.bounded:
            known = f"""select 'known', count() > 0, {KIND}, {ZERO_COUNTERS}, {NO_PERCENTILES}
from {TOTALS}
where {identity}"""
            counters = f"""select 'counters', 0, '', {COUNTER_COLUMNS}, {NO_PERCENTILES}
from {DAILY}
where {scope.condition()}"""
        else:
            # One read of workflow_totals: whether the key is known, its kind and its counters.
            selected = scope.of_kind()
            known = ""
            counters = f"""select 'known', count() > 0, {KIND},
    uniqExactIf(workflow_id, {selected}),
    {", ".join(f"toInt64(sumIf({column}, {selected}))" for column in MEASURES)},
    {NO_PERCENTILES}
from {TOTALS}
where {identity}"""
        durations = f"""select 'durations', 0, '', {ZERO_COUNTERS}, {PERCENTILES}
from {DURATIONS}
where {scope.condition()}"""
        parts = self._union("summary", [known, counters, durations], scope.params(), timeout)
        [(_, found, kind, *_)] = parts["known"]
        if not found:
            return None
        [counted] = parts.get("counters", parts["known"])
        [measured] = parts["durations"]
        return (kind if scope.workflow_id is not None else ""), _summary([*counted[3:10], measured[10]])

    def percentiles(self, scope: Scope, timeout: float) -> tuple[float, float, float, float] | None:
        """The duration percentiles of a scope's finished jobs (None: none finished), from job_duration_daily."""
        select = f"select {PERCENTILES_FLOAT64}\nfrom {DURATIONS}\nwhere {scope.condition()}"
        [[values]] = self.rows("percentiles", select, scope.params(), timeout)
        return percentiles_of(values)

    def _union(self, name: str, branches: list[str], params: dict[str, Value], timeout: float) -> dict[str, list]:
        """Rows of SELECTs joined by UNION ALL, by their first column (which branch gave them).

        The branches run side by side, where a JOIN of them would wait for every side before it
        starts (measured on the extended RPCs: about half the time, with 2 cores).
        """
        union = "\nunion all\n".join(branch for branch in branches if branch)
        # Wrapped: a SETTINGS clause the backend appends (the deadline) then applies to every branch.
        rows = self.rows(name, f"select * from (\n{union}\n)", params, timeout)
        parts: dict[str, list] = {}
        for row in rows:
            parts.setdefault(row[0], []).append(row)
        return parts

    def known(self, user_id: str, workflow_id: str | None, timeout: float) -> bool:
        """Whether the user (and that workflow of the user) has any analytics."""
        condition = "user_id = {user_id:String}"
        params: dict[str, Value] = {"user_id": user_id}
        if workflow_id is not None:
            condition += " and workflow_id = {workflow_id:String}"
            params["workflow_id"] = workflow_id
        rows = self.rows("known", f"select 1 from {TOTALS} where {condition} limit 1", params, timeout)
        return bool(rows)

    # -- time series ----------------------------------------------------------------------------
    def time_series(self, scope: Scope, granularity: str, timeout: float) -> list[tuple[dt.date, Summary]]:
        """One summary per bucket with any event, oldest first."""
        bucket = BUCKETS[granularity]
        where = f"where {scope.condition()}\ngroup by bucket"
        parts = self._union(
            "time_series",
            [
                f"select 'counters', toString({bucket}) as bucket, {COUNTER_COLUMNS}, {NO_PERCENTILES}\n"
                f"from {DAILY}\n{where}",
                f"select 'durations', toString({bucket}) as bucket, {ZERO_COUNTERS}, {PERCENTILES}\n"
                f"from {DURATIONS}\n{where}",
            ],
            scope.params(),
            timeout,
        )
        # A bucket is one with counters; a finished job counts on the day its duration does.
        percentiles = {row[1]: row[9] for row in parts.get("durations", [])}
        return [
            (dt.date.fromisoformat(row[1]), _summary([*row[2:9], percentiles.get(row[1])]))
            for row in sorted(parts.get("counters", []), key=lambda row: row[1])
        ]

    # -- listing workflows ----------------------------------------------------------------------
    def list_workflows(
        self, scope: Scope, sort: str, ascending: bool, after: Position | None, limit: int, timeout: float
    ) -> list[WorkflowRow]:
        """A page of the scope's workflows, sorted by ``sort`` then workflow id."""
        column = SORT_COLUMNS[sort]
        params = {**scope.params(), "limit": limit}
        resume = "1"
        if after is not None:
            # Rows strictly after the last one of the previous page, in this order.
            beyond = ">" if ascending else "<"
            resume = (
                f"({column} {beyond} {{after_value:Int64}}"
                f" or ({column} = {{after_value:Int64}} and workflow_id > {{after_workflow_id:String}}))"
            )
            params.update(after_value=after.value, after_workflow_id=after.workflow_id)
        if scope.period.bounded:
            source = self._listed_days(scope)
        else:
            # Every day: workflow_totals holds each workflow's kind and counters in one row (or a few).
            source = f"""(
        select workflow_id, {KIND} as kind, {WORKFLOW_COUNTERS}
        from {TOTALS}
        where user_id = {{user_id:String}}
        group by workflow_id
    )"""
        selected = "kind = {kind:String}" if scope.kind is not None else "1"
        rows = self.rows(
            "list_workflows",
            f"""select {LISTED_NAMES}
from {source}
where {selected} and {resume}
order by {column} {"asc" if ascending else "desc"}, workflow_id asc
limit {{limit:UInt32}}""",
            params,
            timeout,
        )
        return [WorkflowRow(row[0], row[1], *(int(value) for value in row[2:])) for row in rows]

    @staticmethod
    def _listed_days(scope: Scope) -> str:
        """Each workflow of the scope with its counters of the scope's days (workflow_daily)."""
        return f"""(
    with
    kinds as (
        select workflow_id, {KIND} as kind
        from {TOTALS}
        where user_id = {{user_id:String}}
        group by workflow_id
    ),
    counters as (
        select workflow_id, {WORKFLOW_COUNTERS}
        from {DAILY}
        where {scope.condition()}
        group by workflow_id
    )
    select workflow_id, kinds.kind as kind, {COUNTER_NAMES}
    from counters left join kinds using (workflow_id)
)"""
