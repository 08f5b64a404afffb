"""The gRPC service at DESIGN.md's scale: latency and throughput next to the same queries on chDB.

1. `analytics up` in a throw-away data directory builds the schema; workflow_totals is then
   filled directly with synthetic aggregate rows at DESIGN.md's scale (INSERT ... SELECT FROM
   numbers(): 10,000 users, 1,000,000 workflows, about 50,000,000 job events' worth of jobs and
   200,000,000 log entries), plus a second, unmerged part for a tenth of the workflows, as
   fresh events leave it. The two measured calls read only workflow_totals.
2. GetWorkflowAnalytics and GetUserAnalytics over gRPC: the service inside `analytics up`
   (in-process chDB, the embedded mode the targets are for), and `analytics grpc` reading the
   same stack over its ClickHouse HTTP interface (server mode's path).
3. `analytics up` stops; this process opens the data directory with chDB and runs the very
   same statements (server/queries.py) through the same per-thread backend: the baseline.

Latency: one caller, one call at a time. Throughput: several callers at once for a few seconds.
Client and server share the machine, as DESIGN.md's 2-core target machine would have them.

    .venv/bin/python -m benchmarks.bench_grpc [--requests 5000] [--seconds 10] [--callers 8]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from analytics_proto import analytics_pb2 as pb
from benchmarks.bench_http_front import machine
from embedded.backend import ChdbBackend
from embedded.engine import Engine
from server.queries import USER_TOTALS, WORKFLOW_TOTALS
from tests.grpc_server import start_grpc, start_up
from tests.intake import execute, query

USERS = 10_000
WORKFLOWS = 1_000_000
TARGETS = {"GetWorkflowAnalytics": 3.0, "GetUserAnalytics": 5.0}  # p99 ms, DESIGN.md
THROUGHPUT_TARGET = 1500  # GetWorkflowAnalytics requests/s


def totals_fill(users: int, workflows: int, big_user_workflows: int = 0) -> str:
    """One row per workflow: ~17 jobs (created, started, ended: ~50 events) and ~200 log entries
    each; with ``big_user_workflows``, that many more for one user, `user-big`."""
    user, workflow = f"concat('user-', toString(number % {users}))", "concat('wf-', toString(number))"
    if big_user_workflows:
        user = f"if(number < {workflows}, {user}, 'user-big')"
        workflow = f"if(number < {workflows}, {workflow}, concat('wf-big-', toString(number)))"
    return f"""
insert into analytics.workflow_totals
select
    {user} as user_id,
    {workflow} as workflow_id,
    if(number % 3 = 0, 'HEARTBEAT', 'CONTAINER') as kind,
    toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(number % 7776000) as first_event_at,
    first_event_at + toIntervalDay(3) as last_event_at,
    null as terminated_at,
    null as deleted_at,
    2 as workflow_events,
    toInt64(10 + cityHash64(number, 1) % 15) as jobs,
    toInt64(intDiv(jobs * 7, 10)) as jobs_completed,
    toInt64(intDiv(jobs, 10)) as jobs_failed,
    toInt64(intDiv(jobs, 20)) as jobs_cancelled,
    toInt64((jobs_completed + jobs_failed) * (1 + cityHash64(number, 2) % 600)) as job_execution_seconds,
    toInt64(100 + cityHash64(number, 3) % 201) as joblogs
from numbers({workflows + big_user_workflows})
"""


FILL = totals_fill(USERS, WORKFLOWS)
# Fresh activity on a tenth of the workflows, in a part of its own until merges catch up.
TOP_UP = f"""
insert into analytics.workflow_totals (user_id, workflow_id, jobs, jobs_completed, job_execution_seconds, joblogs)
select concat('user-', toString(number % {USERS})), concat('wf-', toString(number)), 1, 1, 30, 5
from numbers({WORKFLOWS}) where number % 10 = 0
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def latency(call: Callable[[int], object], requests: int) -> dict:
    for n in range(min(500, requests)):  # warm caches and connections
        call(n)
    samples = []
    for n in range(requests):
        start = time.perf_counter()
        call(n)
        samples.append(time.perf_counter() - start)
    return {
        "p50_ms": statistics.median(samples) * 1e3,
        "p99_ms": percentile(samples, 0.99) * 1e3,
        "mean_ms": statistics.fmean(samples) * 1e3,
    }


def throughput(make_call: Callable[[], Callable[[int], object]], callers: int, seconds: float) -> float:
    """Calls per second with ``callers`` threads each calling as fast as answers come."""
    done = [0] * callers
    stop = threading.Event()
    ready = threading.Barrier(callers + 1)

    def caller(index: int) -> None:
        call = make_call()
        call(index)
        ready.wait()
        n = 0
        while not stop.is_set():
            call(index * 1_000_003 + n)
            n += 1
        done[index] = n

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - start)


def workload(seed: int = 7) -> tuple[list[str], list[tuple[str, str]]]:
    """Existing users and (user, workflow) pairs in a fixed random order."""
    rng = random.Random(seed)
    users = [f"user-{rng.randrange(USERS)}" for _ in range(50_000)]
    pairs = []
    for _ in range(50_000):
        n = rng.randrange(WORKFLOWS)
        pairs.append((f"user-{n % USERS}", f"wf-{n}"))
    return users, pairs


def grpc_calls(service, users, pairs) -> dict[str, Callable[[], Callable[[int], object]]]:
    """Per RPC, a factory of call functions (each with its own channel, as separate clients have)."""

    def user_call():
        stub = service.stub(service.channel())
        return lambda n: stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=users[n % len(users)]), timeout=10)

    def workflow_call():
        stub = service.stub(service.channel())

        def call(n):
            user, workflow = pairs[n % len(pairs)]
            return stub.GetWorkflowAnalytics(
                pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=workflow), timeout=10
            )

        return call

    return {"GetWorkflowAnalytics": workflow_call, "GetUserAnalytics": user_call}


def chdb_calls(backend: ChdbBackend, users, pairs) -> dict[str, Callable[[], Callable[[int], object]]]:
    def user_call():
        return lambda n: backend.rows(USER_TOTALS, {"user_id": users[n % len(users)]}, 10)

    def workflow_call():
        def call(n):
            user, workflow = pairs[n % len(pairs)]
            return backend.rows(WORKFLOW_TOTALS, {"user_id": user, "workflow_id": workflow}, 10)

        return call

    return {"GetWorkflowAnalytics": workflow_call, "GetUserAnalytics": user_call}


def measure(calls: dict, args) -> dict:
    results = {}
    for name, make_call in calls.items():
        results[name] = latency(make_call(), args.requests)
        results[name]["requests_per_s"] = throughput(make_call, args.callers, args.seconds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000, help="sequential calls per latency figure")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each throughput run")
    parser.add_argument("--callers", type=int, default=8, help="concurrent callers in the throughput runs")
    parser.add_argument("--workers", type=int, default=8, help="gRPC worker threads (ANALYTICS_GRPC_WORKERS)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-grpc-"))
    print(f"machine: {machine()}; data in {work}", flush=True)
    users, pairs = workload()
    results: dict[str, dict] = {}

    stack = start_up(work / "data", env={"ANALYTICS_GRPC_WORKERS": str(args.workers), "ANALYTICS_LOG_LEVEL": "WARNING"})
    http = SimpleNamespace(url=stack.extra["url"])
    try:
        started = time.perf_counter()
        execute(http, FILL)
        execute(http, TOP_UP)
        [sizes] = query(
            http,
            "select count() as rows, uniqExact(user_id) as users, uniqExact(workflow_id) as workflows,"
            " sum(jobs) as jobs, sum(joblogs) as joblogs from analytics.workflow_totals",
        )
        [parts] = query(
            http,
            "select count() as parts from system.parts where database = 'analytics'"
            " and table = 'workflow_totals' and active",
        )
        print(f"filled in {time.perf_counter() - started:.0f}s: {sizes}, active parts {parts['parts']}", flush=True)

        results["gRPC, in `analytics up` (chDB)"] = measure(grpc_calls(stack, users, pairs), args)
        print(json.dumps(results, indent=1), flush=True)
        over_http = start_grpc(
            work,
            "--clickhouse-url",
            stack.extra["url"],
            "--workers",
            str(args.workers),
            env={"ANALYTICS_LOG_LEVEL": "WARNING"},
        )
        try:
            results["gRPC, `analytics grpc` over HTTP"] = measure(grpc_calls(over_http, users, pairs), args)
        finally:
            over_http.stop()
    finally:
        stack.stop()
    print(json.dumps(results, indent=1), flush=True)

    # The same statements on the same data, chDB in this process: the baseline.
    engine = Engine(work / "data" / "clickhouse", pool_size=args.callers + 1)
    engine.open()
    backend = ChdbBackend(engine)
    try:
        results["chDB directly (same SQL)"] = measure(chdb_calls(backend, users, pairs), args)
    finally:
        backend.close()
        engine.close()

    baseline = results["chDB directly (same SQL)"]
    print(f"\nmachine: {machine()}")
    print(f"{'':34} {'RPC':22} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}  ratio p50 / p99 / req/s to chDB")
    for label, rows in results.items():
        for name, row in rows.items():
            base = baseline[name]
            ratio = (
                f"{row['p50_ms'] / base['p50_ms']:.2f} / {row['p99_ms'] / base['p99_ms']:.2f}"
                f" / {row['requests_per_s'] / base['requests_per_s']:.2f}"
            )
            print(
                f"{label:34} {name:22} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['requests_per_s']:8.0f}  {ratio}"
            )
    print(f"\ntargets (DESIGN.md): p99 {TARGETS} ms; GetWorkflowAnalytics >= {THROUGHPUT_TARGET} requests/s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
