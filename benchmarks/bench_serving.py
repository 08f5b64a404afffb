"""Serving speed with ghz: every lookup against an empty RPC on the same server, in one run.

1. `analytics up` in a throw-away data directory builds the schema; the aggregates are filled
   directly at DESIGN.md's scale (``--users``, ``--workflows``; 10,000 and 1,000,000 by
   default): workflow_totals, one day of workflow_daily and job_duration_daily per workflow,
   and one user with ``--big-user-workflows`` (100,000) workflows.
2. For each deployment and setting, ghz (built from the Go module proxy) drives over a real
   channel: the health Check (the empty RPC, the baseline), GetWorkflowAnalytics and
   GetUserAnalytics on random existing keys, the big user, and the extended RPCs (the big user's
   details and listing too); p50 with one caller, p99 and requests/s with ``--callers`` (16).
   Deployments: the service inside `analytics up` (in-process chDB) and `analytics grpc
   --clickhouse-url` (HTTP), each with the serving model on (read-your-writes in `up`, its
   default; a 1 s bound over HTTP) and off (every lookup asks ClickHouse, coalesced).
3. Overload, in each `up` deployment: GetWorkflowAnalytics from 64 callers with a 1 s deadline,
   alone and beside 8 callers of a slow query (the big user's listing, 2 s deadline), then from
   256 callers, beyond the workers and the queue; latencies and every status code.
4. Freshness: an event inserted over the HTTP intake, then GetWorkflowAnalytics polled until
   it counts it; p50 and p99 of insert-to-visible. With the serving model, two writes after the
   fill come first, each followed by a fresh model, before anything is measured: the feed
   re-reads the keys of the previous poll's blocks at a later write, here the fill's 1.1M keys.

ghz and the server share the machine's cores; the empty RPC's figures stand next to each row.

    .venv/bin/python -m benchmarks.bench_serving [--users 10000] [--workflows 1000000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import statistics
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

from analytics_proto import analytics_pb2 as pb
from benchmarks import ghz
from benchmarks.bench_grpc import totals_fill
from benchmarks.bench_http_front import machine
from tests.embedded_server import free_port
from tests.grpc_server import ServiceProcess, start_grpc, start_up
from tests.intake import execute, post_batch, query

HEALTH = "grpc.health.v1.Health.Check"
SERVICE = "analytics.AnalyticsService."


def fill(http, users: int, workflows: int, big: int) -> None:
    execute(http, totals_fill(users, workflows, big))
    execute(
        http,
        """insert into analytics.workflow_daily
    (user_id, workflow_id, day, kind, workflow_events, jobs, jobs_completed, jobs_failed, jobs_cancelled,
     job_execution_seconds, joblogs)
select user_id, workflow_id, toDate(first_event_at), kind, workflow_events, jobs, jobs_completed, jobs_failed,
    jobs_cancelled, job_execution_seconds, joblogs
from analytics.workflow_totals""",
    )
    execute(
        http,
        """insert into analytics.job_duration_daily
select user_id, workflow_id, toDate(first_event_at),
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(toFloat64(intDiv(job_execution_seconds,
        greatest(jobs_completed + jobs_failed, 1))))
from analytics.workflow_totals
group by user_id, workflow_id, toDate(first_event_at)""",
    )


def requests_of(users: int, workflows: int, count: int = 2000, seed: int = 7) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    pairs = [(n % users, n) for n in (rng.randrange(workflows) for _ in range(count))]
    user_ids = [f"user-{rng.randrange(users)}" for _ in range(count)]
    return {
        "GetWorkflowAnalytics": [{"user_id": f"user-{u}", "workflow_id": f"wf-{w}"} for u, w in pairs],
        "GetUserAnalytics": [{"user_id": u} for u in user_ids],
        "GetUserAnalyticsDetails": [{"user_id": u} for u in user_ids],
        "GetAnalyticsTimeSeries": [{"user_id": u, "granularity": "GRANULARITY_WEEK"} for u in user_ids],
        "ListWorkflowAnalytics": [{"user_id": u, "page_size": 20} for u in user_ids],
    }


def measure(service: ServiceProcess, calls: dict[str, list[dict]], args, extended: bool) -> list[dict]:
    """Latency at one caller and load at ``callers``, for the empty RPC and each lookup."""
    rows = []
    plan = [("Health.Check", HEALTH, [{}]), *[(name, SERVICE + name, calls[name]) for name in calls]]
    plan.insert(3, ("GetUserAnalytics (big user)", SERVICE + "GetUserAnalytics", [{"user_id": "user-big"}]))
    if not extended:
        plan = plan[:4]
    else:
        # What a user of 100,000 workflows costs the calls that read all of them.
        big = {"user_id": "user-big"}
        plan.append(("GetUserAnalyticsDetails (big user)", SERVICE + "GetUserAnalyticsDetails", [big]))
        plan.append(("ListWorkflowAnalytics (big user)", SERVICE + "ListWorkflowAnalytics", [{**big, "page_size": 20}]))
        weeks = {**big, "granularity": "GRANULARITY_WEEK"}
        plan.append(("GetAnalyticsTimeSeries (big user)", SERVICE + "GetAnalyticsTimeSeries", [weeks]))
    for label, method, requests in plan:
        one = ghz.run(service.target, method, requests, 1, args.seconds)
        many = ghz.run(service.target, method, requests, args.callers, args.seconds)
        rows.append(
            {
                "call": label,
                "p50_ms": one.p50_ms,
                "p99_1_ms": one.p99_ms,
                "p99_ms": many.p99_ms,
                "rps": many.requests_per_s,
                "errors": one.errors + many.errors,
                "codes": {**one.codes, **many.codes},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def overload(service: ServiceProcess, calls: dict[str, list[dict]], args) -> list[dict]:
    """Does it degrade rather than collapse? Lookups from 64 callers, each with a 1 s deadline:
    alone; beside 8 callers of a slow query (the listing of the big user's 100,000 workflows,
    which ClickHouse sorts in either deployment; 2 s deadline); and from 256 callers, beyond the
    workers and the queue (RESOURCE_EXHAUSTED expected)."""
    lookup, requests = SERVICE + "GetWorkflowAnalytics", calls["GetWorkflowAnalytics"]
    runs = [("64 callers, alone", ghz.run(service.target, lookup, requests, 64, args.seconds, deadline=1.0))]
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(
            ghz.run,
            service.target,
            SERVICE + "ListWorkflowAnalytics",
            [{"user_id": "user-big", "page_size": 20}],
            8,
            args.seconds,
            0,
            2.0,
        )
        beside = pool.submit(ghz.run, service.target, lookup, requests, 64, args.seconds, 20, 1.0)
        runs += [("64 callers, beside the slow query", beside.result()), ("the slow query, 8 callers", slow.result())]
    runs.append(("256 callers", ghz.run(service.target, lookup, requests, 256, args.seconds, deadline=1.0)))
    rows = []
    for label, run in runs:
        rows.append(
            {"call": label, "p50_ms": run.p50_ms, "p99_ms": run.p99_ms, "rps": run.requests_per_s, "codes": run.codes}
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def send_job_log(http, user: str, workflow: str, job: str) -> None:
    """One new job-log event of the job, now, over the HTTP intake."""
    event = {
        "event_id": str(uuid.uuid4()),
        "event_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "event_type": "job_log",
        "event_name": "created",
        "user_id": user,
        "workflow_id": workflow,
        "job_id": job,
        "count": 1,
    }
    assert post_batch(http, "job_logs", [event]).status == 200


def freshness(service: ServiceProcess, http, samples: int) -> dict:
    """Seconds from sending one job-log event over HTTP to GetWorkflowAnalytics counting it."""
    delays = []
    with service.channel() as channel:
        stub = service.stub(channel)
        for n in range(samples):
            workflow = f"fresh-{uuid.uuid4().hex[:12]}"
            request = pb.GetWorkflowAnalyticsRequest(user_id="fresh-user", workflow_id=workflow)
            sent = time.perf_counter()
            send_job_log(http, "fresh-user", workflow, f"job-{n}")
            while True:
                try:
                    stub.GetWorkflowAnalytics(request, timeout=10)
                    break
                except Exception:  # noqa: BLE001 - NOT_FOUND until visible
                    time.sleep(0.002)
            delays.append(time.perf_counter() - sent)
            time.sleep(random.uniform(0, 0.2))  # events land at any point of the feed's cycle
    delays.sort()
    return {
        "p50_ms": statistics.median(delays) * 1e3,
        "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1e3,
        "max_ms": delays[-1] * 1e3,
    }


def settle(http) -> None:
    """One job-log event over HTTP, so that the serving model's feed reads past the fill."""
    send_job_log(http, "settle-user", "settle-workflow", "settle-job")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_until_fresh(metrics_url: str, timeout: float = 1800) -> float:
    """Seconds until the serving model has stayed fresh (< 0.5 s old) for three seconds in a row."""
    started, fresh_since = time.monotonic(), None
    while time.monotonic() - started < timeout:
        with urllib.request.urlopen(metrics_url, timeout=30) as response:
            text = response.read().decode()
        found = re.search(r"^analytics_grpc_serving_model_staleness_seconds (\S+)$", text, re.MULTILINE)
        age = float(found.group(1)) if found else -1
        if 0 <= age < 0.5:
            fresh_since = fresh_since or time.monotonic()
            if time.monotonic() - fresh_since >= 3:
                return fresh_since - started
        else:
            fresh_since = None
        time.sleep(0.3)
    raise RuntimeError("the serving model did not become fresh")


def report(results: dict[str, dict], args) -> None:
    print(f"\nmachine: {machine()} (shared: load average {Path('/proc/loadavg').read_text().split()[:3]})")
    print(f"scale: {args.users} users, {args.workflows} workflows, one user of {args.big_user_workflows}")
    header = f"{'deployment':44} {'call':30} {'p50@1':>8} {'p99@16':>8} {'req/s@16':>9}  ratio p50 / req/s"
    print(header)
    for label, result in results.items():
        rows = result["rows"]
        base = rows[0]
        for row in rows:
            ratio = f"{row['p50_ms'] / base['p50_ms']:.2f} / {row['rps'] / base['rps']:.2f}"
            errors = f"  errors {row['codes']}" if row["errors"] else ""
            print(
                f"{label:44} {row['call']:30} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['rps']:9.0f}  "
                f"{ratio}{errors}"
            )
        for row in result.get("overload", []):
            print(
                f"{label:44} overload: {row['call']:34} p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
                f"{row['rps']:.0f}/s, {row['codes']}"
            )
        if "freshness" in result:
            print(f"{label:44} freshness, insert to visible: {json.dumps(result['freshness'])}")
        if "rss_mib" in result:
            print(f"{label:44} server RSS {result['rss_mib']:.0f} MiB; fresh {result['load_s']:.1f}s after the fill")
    print("\ntargets: lookup p50 <= 3x the empty RPC's, req/s >= 0.5x; p99 <= 3 ms (workflow), 5 ms (user)")


def over_http(work: Path, http, calls: dict, args, results: dict) -> None:
    """`analytics grpc --clickhouse-url` on the same data, the serving model off and on."""
    for env, label in (
        ({}, "analytics grpc over HTTP, ClickHouse per lookup"),
        ({"ANALYTICS_GRPC_SERVING_MAX_STALENESS": "1"}, "analytics grpc over HTTP, serving model (1 s)"),
    ):
        metrics_port = free_port()
        server = start_grpc(work, "--clickhouse-url", http.url, "--metrics-port", str(metrics_port), env=env)
        try:
            result: dict = {}
            if env:
                result["load_s"] = wait_until_fresh(f"http://127.0.0.1:{metrics_port}/metrics")
                result["rss_mib"] = rss_mib(server.process.pid)
            result["rows"] = measure(server, calls, args, extended=bool(env))
            result["freshness"] = freshness(server, http, args.freshness_samples)
            results[label] = result
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--workflows", type=int, default=1_000_000)
    parser.add_argument("--big-user-workflows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each ghz run")
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--freshness-samples", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    ghz.ghz_binary()

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    print(f"machine: {machine()}; data in {work}", flush=True)
    calls = requests_of(args.users, args.workflows)
    results: dict[str, dict] = {}
    quiet = {"ANALYTICS_LOG_LEVEL": "WARNING"}
    model_off = {"ANALYTICS_GRPC_SERVING_MAX_STALENESS": "0"}

    for n, (model, env, label) in enumerate(
        (
            (False, model_off, "analytics up, ClickHouse per lookup (coalesced)"),
            (True, {}, "analytics up, serving model (default: read-your-writes)"),
        )
    ):
        # Each its own data directory: a second `up` on the synthetic data would fail dbt's checks.
        stack = start_up(work / f"data-{n}", env={**quiet, **env})
        http = SimpleNamespace(url=stack.extra["url"])
        try:
            started = time.perf_counter()
            fill(http, args.users, args.workflows, args.big_user_workflows)
            [sizes] = query(http, "select count() as rows, sum(jobs) as jobs from analytics.workflow_totals")
            print(f"filled in {time.perf_counter() - started:.0f}s: {sizes}", flush=True)
            result: dict = {}
            if model:
                result["load_s"] = wait_until_fresh(http.url + "/metrics")
                # A poll re-reads the keys of the previous poll's blocks, so a bulk load's keys are
                # read twice, the second time at a later write (the fill's 1.1M keys: seconds each):
                # two writes, each followed by a fresh model, put that before the measurements.
                for _ in range(2):
                    settle(http)
                    wait_until_fresh(http.url + "/metrics")
                result["rss_mib"] = rss_mib(stack.process.pid)
            result["rows"] = measure(stack, calls, args, extended=True)
            result["overload"] = overload(stack, calls, args)
            result["freshness"] = freshness(stack, http, args.freshness_samples)
            results[label] = result
            if model:
                over_http(work, http, calls, args, results)
        finally:
            stack.stop()
    report(results, args)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
