"""Job logs over gRPC at scale: a first page, a text search and many tails, next to GetWorkflowAnalytics.

1. `analytics up` in a throw-away data directory builds the schema. job_log_events is filled
   straight from numbers(): 50,000 jobs of 1,000 lines (50,000,000 lines over 25 days up to now,
   ~100-byte messages with request ids and numbers, a stderr line in seven) and one job of
   100,000 lines that holds a few rare words; job_log_totals follows through its view (the
   other views on the table are detached for the fill). workflow_totals gets bench_grpc's
   1,000,000 workflows, for GetWorkflowAnalytics.
2. One caller, one call at a time: the health check (an RPC that asks nothing of ClickHouse),
   GetWorkflowAnalytics (the baseline: a point lookup), ListJobLogs' first page of 500 lines of
   a random job (ascending and descending), a search for a rare word in the 100,000-line job
   (each call a word not searched before, so ClickHouse's condition cache cannot answer it) and,
   for comparison, a search the n-gram index cannot narrow (two letters: the job's every line).
3. Tails: TAILS clients each follow a job of its own while lines land through the HTTP intake
   at RATE lines/s in total (batches every 100 ms); the delay of each line from its batch's
   insert returning to the line reaching its client. GetWorkflowAnalytics is timed meanwhile, to
   show the tails leave the workers alone. Then the jobs end and every tail must end.

    .venv/bin/python -m benchmarks.bench_job_logs [--requests 2000] [--tails 100] [--rate 5000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from analytics_proto import analytics_pb2 as pb
from benchmarks.bench_grpc import USERS, WORKFLOWS, percentile
from benchmarks.bench_http_front import machine
from benchmarks.job_log_data import JOBS, LINES_PER_JOB, RARE_WORDS, fill
from tests.embedded_server import free_port
from tests.grpc_server import start_up
from tests.intake import post_batch


def latency(call, requests: int, warm: int = 200) -> dict:
    for n in range(min(warm, requests)):
        call(n)
    samples = []
    for n in range(requests):
        start = time.perf_counter()
        call(warm + n)
        samples.append(time.perf_counter() - start)
    return {"p50_ms": statistics.median(samples) * 1e3, "p99_ms": percentile(samples, 0.99) * 1e3}


def unary_calls(stack, job_count: int) -> dict:
    rng = random.Random(5)
    channel = stack.channel()
    stub = stack.stub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    pairs = [(f"user-{n % USERS}", f"wf-{n}") for n in (rng.randrange(WORKFLOWS) for _ in range(20_000))]
    jobs = [rng.randrange(job_count) for _ in range(20_000)]

    def job_request(n: int, **fields) -> pb.ListJobLogsRequest:
        job = jobs[n % len(jobs)]
        ids = {"user_id": f"user-{job % USERS}", "workflow_id": f"wf-{job % WORKFLOWS}", "job_id": f"job-{job}"}
        return pb.ListJobLogsRequest(**ids, **fields)

    def first_page(n: int):
        response = stub.ListJobLogs(job_request(n), timeout=10)
        assert len(response.lines) == 500 and response.next_page_token
        return response

    def first_page_backwards(n: int):
        # Other jobs than the ascending pages read: their granules are not in the caches yet.
        response = stub.ListJobLogs(job_request(n + len(jobs) // 2, order=pb.LOG_ORDER_DESC), timeout=10)
        assert response.lines[0].sequence == LINES_PER_JOB - 1
        return response

    def search(n: int):
        word = f"RARE{n % RARE_WORDS}QX"  # case-insensitive
        big = pb.ListJobLogsRequest(user_id="user-big", workflow_id="wf-big", job_id="job-big", contains=word)
        [line] = stub.ListJobLogs(big, timeout=10).lines
        return line

    def scan(n: int):
        big = pb.ListJobLogsRequest(user_id="user-big", workflow_id="wf-big", job_id="job-big", contains="zq")
        return stub.ListJobLogs(big, timeout=10)

    return {
        "health check (no ClickHouse)": lambda n: health.Check(health_pb2.HealthCheckRequest(), timeout=10),
        "GetWorkflowAnalytics": lambda n: stub.GetWorkflowAnalytics(
            pb.GetWorkflowAnalyticsRequest(user_id=pairs[n % len(pairs)][0], workflow_id=pairs[n % len(pairs)][1]),
            timeout=10,
        ),
        "ListJobLogs, first page of 500": first_page,
        "ListJobLogs, first page, descending": first_page_backwards,
        "search a rare word, 100,000-line job": search,
        "search 2 letters (index cannot help)": scan,
    }


def tails(stack, http, count: int, rate: int, seconds: float) -> dict:
    """``count`` tails of as many running jobs while ``rate`` lines/s land; delays from insert to client."""
    prefix = f"tail-{int(time.time())}"
    jobs = [
        {"user_id": f"{prefix}-u{n % 10}", "workflow_id": f"{prefix}-w{n}", "job_id": f"{prefix}-j{n}"}
        for n in range(count)
    ]
    now = time.time()
    created = [job_event(job, "created", now) for job in jobs]
    assert post_batch(http, "jobs", created).status == 200
    landed: dict[int, float] = {}
    arrivals: list[tuple[int, float]] = []  # (batch, when its line reached the client)
    received = [0] * count
    guard = threading.Lock()
    channel = stack.channel()
    stub = stack.stub(channel)
    calls = [stub.StreamJobLogs(pb.StreamJobLogsRequest(**job), timeout=seconds * 10 + 120) for job in jobs]
    errors: list[str] = []

    def follow(index: int) -> None:
        try:
            for line in calls[index]:
                arrived = time.time()
                batch = int(line.message.split(" ", 1)[0])
                with guard:
                    received[index] += 1
                    arrivals.append((batch, arrived))
        except grpc.RpcError as error:
            errors.append(f"{error.code()}: {error.details()}")

    readers = [threading.Thread(target=follow, args=(n,), daemon=True) for n in range(count)]
    for reader in readers:
        reader.start()
    time.sleep(2)  # every tail subscribed (they have no history)

    # Lines land as the Kafka bridge inserts them: a batch every flush interval (250 ms), each
    # insert on one of two senders, so a slow insert does not hold back the next batch.
    per_batch = max(1, rate // 4)
    lookups: list[float] = []
    stop = threading.Event()
    batches: queue.Queue = queue.Queue()

    def send() -> None:
        while (item := batches.get()) is not None:
            batch, events = item
            response = post_batch(http, "job_logs", events)
            assert response.status == 200, response.data[:300]
            with guard:
                landed[batch] = time.time()

    def lookup_while_tailing() -> None:
        other = stack.stub(stack.channel())
        n = 0
        while not stop.is_set():
            start = time.perf_counter()
            other.GetWorkflowAnalytics(
                pb.GetWorkflowAnalyticsRequest(user_id=f"user-{n % USERS}", workflow_id=f"wf-{n}"), timeout=10
            )
            lookups.append(time.perf_counter() - start)
            n += 1
            stop.wait(0.02)

    senders = [threading.Thread(target=send, daemon=True) for _ in range(2)]
    prober = threading.Thread(target=lookup_while_tailing, daemon=True)
    for thread in [*senders, prober]:
        thread.start()
    started = time.time()
    batch = sent = 0
    while time.time() - started < seconds:
        tick = started + batch * 0.25
        if time.time() < tick:
            time.sleep(tick - time.time())
        events = []
        for k in range(per_batch):
            job = jobs[(batch * per_batch + k) % count]
            events.append(line_event(job, f"{prefix}-{batch}-{k}", batch * per_batch + k, f"{batch} line {k}"))
        batches.put((batch, events))
        sent += len(events)
        batch += 1
    for _ in senders:
        batches.put(None)
    for sender in senders:
        sender.join()
    elapsed = time.time() - started
    stop.set()
    prober.join()
    ended = [job_event(job, "cancelled", time.time()) for job in jobs]
    assert post_batch(http, "jobs", ended).status == 200
    for reader in readers:
        reader.join(timeout=60)
    still_open = sum(reader.is_alive() for reader in readers)
    channel.close()
    # From the insert returning (the line has landed) to the line reaching its client; a line can
    # reach it before the sender has its answer: that counts as no delay.
    delays = [max(0.0, arrived - landed[batch]) for batch, arrived in arrivals]
    return {
        "tails": count,
        "lines_sent": sent,
        "lines_per_s": sent / elapsed,
        "lines_received": sum(received),
        "delay_p50_ms": statistics.median(delays) * 1e3,
        "delay_p99_ms": percentile(delays, 0.99) * 1e3,
        "delay_max_ms": max(delays) * 1e3,
        "GetWorkflowAnalytics_while_tailing_p50_ms": statistics.median(lookups) * 1e3,
        "GetWorkflowAnalytics_while_tailing_p99_ms": percentile(lookups, 0.99) * 1e3,
        "tails_still_open_after_jobs_ended": still_open,
        "errors": errors[:3],
    }


def poll_figures(port: int) -> dict:
    """How many polls fed the tails and what their ClickHouse statements took, from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {
        (sample.name, sample.labels.get("query", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    figures = {"polls": samples.get(("analytics_grpc_log_tail_polls_total", ""), 0)}
    for query_name in ("job_ends", "job_log_tail"):
        count = samples.get(("analytics_clickhouse_query_seconds_count", query_name), 0)
        total = samples.get(("analytics_clickhouse_query_seconds_sum", query_name), 0)
        figures[f"{query_name}_mean_ms"] = total / count * 1e3 if count else 0
    return figures


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment * 1000) % 1000:03d}Z"


def job_event(job: dict, name: str, moment: float) -> dict:
    status = {"created": "PENDING"}.get(name, name.upper())
    return {
        "event_id": f"{job['job_id']}-{name}",
        "event_time": _iso(moment),
        "event_type": "job",
        "event_name": name,
        "status": status,
        **job,
    }


def line_event(job: dict, event_id: str, sequence: int, message: str) -> dict:
    return {
        "event_id": event_id,
        "event_time": _iso(time.time()),
        "event_type": "job_log",
        "event_name": "created",
        "count": 1,
        "stream": "stdout",
        "sequence": sequence,
        "message": message,
        **job,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="sequential calls per latency figure")
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"jobs of {LINES_PER_JOB} lines")
    parser.add_argument("--tails", type=int, default=100)
    parser.add_argument("--rate", type=int, default=5000, help="lines landing per second, in total")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long lines land for the tails")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-job-logs-"))
    print(f"machine: {machine()}; data in {work}", flush=True)
    metrics_port = free_port()
    stack = start_up(
        work / "data",
        env={
            "ANALYTICS_GRPC_MAX_LOG_TAILS": str(args.tails + 8),
            "ANALYTICS_GRPC_METRICS_PORT": str(metrics_port),
            "ANALYTICS_LOG_LEVEL": "WARNING",
        },
    )
    http = SimpleNamespace(url=stack.extra["url"])
    results: dict = {}
    try:
        fill(http, args.jobs)
        for name, call in unary_calls(stack, args.jobs).items():
            requests = args.requests if "search" not in name else min(args.requests, RARE_WORDS)
            results[name] = latency(call, requests, warm=0 if "search" in name else 200)
            print(name, json.dumps(results[name]), flush=True)
        results["tails"] = tails(stack, http, args.tails, args.rate, args.seconds)
        results["tails"].update(poll_figures(metrics_port))
        print(json.dumps(results["tails"], indent=1), flush=True)
    finally:
        stack.stop()

    baseline = results["GetWorkflowAnalytics"]
    print(f"\nmachine: {machine()}")
    print(f"{'call':40} {'p50 ms':>8} {'p99 ms':>8}  ratio p50 / p99 to GetWorkflowAnalytics")
    for name, row in results.items():
        if name == "tails":
            continue
        ratio = f"{row['p50_ms'] / baseline['p50_ms']:.2f} / {row['p99_ms'] / baseline['p99_ms']:.2f}"
        print(f"{name:40} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}  {ratio}")
    tail = results["tails"]
    print(
        f"\n{tail['tails']} tails, {tail['lines_per_s']:.0f} lines/s landing: delay from insert to client"
        f" p50 {tail['delay_p50_ms']:.0f} ms, p99 {tail['delay_p99_ms']:.0f} ms, max {tail['delay_max_ms']:.0f} ms;"
        f" {tail['lines_received']} of {tail['lines_sent']} lines received; GetWorkflowAnalytics meanwhile"
        f" p50 {tail['GetWorkflowAnalytics_while_tailing_p50_ms']:.2f} ms, p99"
        f" {tail['GetWorkflowAnalytics_while_tailing_p99_ms']:.2f} ms; tails still open after their jobs ended:"
        f" {tail['tails_still_open_after_jobs_ended']}; {tail['polls']:.0f} polls, their statements"
        f" {tail['job_ends_mean_ms']:.1f} + {tail['job_log_tail_mean_ms']:.1f} ms on average"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
