"""The extended RPCs' statements on a partition per month against a partition per day, in one run.

1. `analytics up` in a throw-away data directory builds the schema and stops once the aggregates
   are filled as `bench_serving` fills them (10,000 users, 1,000,000 workflows, one day of daily
   aggregates per workflow over 13 days, one user of 100,000 workflows).
2. This process opens the data directory with chDB and copies workflow_daily and
   job_duration_daily into tables partitioned by day (``<table>__by_day``), the layout of
   earlier versions.
3. The statements of server/queries.py (details, time series, listings; all time and one week)
   run through the service's own in-process backend on random users, each round every statement
   on both layouts and ``SELECT 1`` (the baseline), so the machine's load falls on all alike.

It prints, per statement and layout, the median and p99 in milliseconds, the ratio of each median
to ``SELECT 1``'s, and the gain of the month layout over the day layout.

    .venv/bin/python -m benchmarks.bench_extended [--users 10000] [--workflows 1000000] [--rounds 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from benchmarks.bench_http_front import machine
from benchmarks.bench_serving import fill
from core.backend import QueryBackend, Value
from embedded.backend import ChdbBackend
from embedded.engine import Engine
from server.queries import Queries, Scope
from server.validation import Period
from tests.grpc_server import start_up

DAILY_TABLES = ("workflow_daily", "job_duration_daily")
WEEK = Period(dt.date(2026, 1, 2), dt.date(2026, 1, 8))  # within the fill's 13 days


class ByDay:
    """The backend, with the statements reading the day-partitioned copies."""

    def __init__(self, backend: QueryBackend):
        self.backend = backend
        self.writes = None

    def rows(self, sql: str, params: dict[str, Value], timeout: float) -> list[list]:
        for table in DAILY_TABLES:
            sql = sql.replace(f"analytics.{table}", f"analytics.{table}__by_day")
        return self.backend.rows(sql, params, timeout)


def copy_by_day(backend: ChdbBackend) -> None:
    for table in DAILY_TABLES:
        backend.rows(
            f"""create table analytics.{table}__by_day as analytics.{table}
engine = AggregatingMergeTree partition by toYYYYMMDD(day) order by (user_id, workflow_id, day)
settings index_granularity = 1024""",
            {},
            600,
        )
        backend.rows(f"insert into analytics.{table}__by_day select * from analytics.{table}", {}, 600)


def parts(backend: ChdbBackend) -> dict[str, int]:
    rows = backend.rows(
        """select table, toInt64(count()) from system.parts
where database = 'analytics' and active and table like '%daily%' group by table""",
        {},
        60,
    )
    return {table: int(count) for table, count in rows}


def statements(queries: Queries) -> dict[str, Callable[[str], object]]:
    return {
        "details, all time": lambda user: queries.summary(Scope(user), 30),
        "details, one week": lambda user: queries.summary(Scope(user, period=WEEK), 30),
        "time series by week": lambda user: queries.time_series(Scope(user), "week", 30),
        "listing, all time": lambda user: queries.list_workflows(Scope(user), "jobs", False, None, 21, 30),
        "listing, one week": lambda user: queries.list_workflows(Scope(user, period=WEEK), "jobs", False, None, 21, 30),
    }


def p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, round(0.99 * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--workflows", type=int, default=1_000_000)
    parser.add_argument("--big-user-workflows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-extended-"))
    print(f"machine: {machine()}; data in {work}", flush=True)
    try:
        stack = start_up(work / "data", env={"ANALYTICS_LOG_LEVEL": "WARNING"})
        try:
            fill(SimpleNamespace(url=stack.extra["url"]), args.users, args.workflows, args.big_user_workflows)
        finally:
            stack.stop()
        engine = Engine(work / "data" / "clickhouse")
        engine.open()
        backend = ChdbBackend(engine)
        copy_by_day(backend)
        print(f"active parts: {parts(backend)}", flush=True)

        layouts = {"month": statements(Queries(backend)), "day": statements(Queries(ByDay(backend)))}
        times: dict[tuple[str, str], list[float]] = {}
        baseline: list[float] = []
        rng = random.Random(11)
        for _ in range(args.rounds):
            user = f"user-{rng.randrange(args.users)}"
            started = time.perf_counter()
            backend.rows("select 1", {}, 30)
            baseline.append((time.perf_counter() - started) * 1000)
            for layout, calls in layouts.items():
                for name, call in calls.items():
                    started = time.perf_counter()
                    call(user)
                    times.setdefault((name, layout), []).append((time.perf_counter() - started) * 1000)
        engine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    one = statistics.median(baseline)
    print(f"\nSELECT 1 (baseline): median {one:.2f} ms, p99 {p99(baseline):.2f} ms; {args.rounds} rounds")
    print(f"{'statement':22} {'layout':6} {'median':>9} {'p99':>9} {'/SELECT 1':>10} {'month gain':>11}")
    for name in layouts["month"]:
        for layout in ("day", "month"):
            values = times[(name, layout)]
            median = statistics.median(values)
            gain = statistics.median(times[(name, "day")]) / median if layout == "month" else None
            shown = f"{gain:.2f}x" if gain else ""
            print(f"{name:22} {layout:6} {median:7.1f}ms {p99(values):7.1f}ms {median / one:9.1f}x {shown:>11}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
