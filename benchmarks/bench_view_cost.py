"""What one insert pays for the chain of views, whatever its size: where issue 12's small batches,
freshness and the test suite's time go.

Against one embedded ClickHouse with the schema built, in one run:

1. per topic, a one-event insert into its landing table with every view attached, against the same
   event inserted into a Null table of the same columns and no views (the baseline);
2. per materialized view, its own SELECT run over its (empty) source table: what planning the view
   costs each block before a single row moves, against ``SELECT 1`` (the baseline);
3. the engine's cost per expression node: a SELECT of k simple conditions, k = 1, 20, 100.

Each figure is the median and p99 of ``--samples`` runs, with its ratio to the baseline. The
events are generated as the tests make them, each insert a new event.

    .venv/bin/python -m benchmarks.bench_view_cost [--samples 40]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.bench_http_front import machine
from core.settings.composed import Settings
from operations.migrate import migrate
from tests import embedded_server
from tests.datasets import generate
from tests.intake import HTTP, execute, insert_statement, query

TOPICS = ("workflows", "jobs", "job_logs")


def timings(run, samples: int) -> dict:
    """Median and p99 in milliseconds of ``samples`` calls of ``run``."""
    seconds = []
    for n in range(samples):
        started = time.perf_counter()
        run(n)
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    p99 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))]
    return {"p50_ms": statistics.median(seconds) * 1e3, "p99_ms": p99 * 1e3}


def post(url: str, statement: str, body: bytes) -> None:
    response = HTTP.request("POST", f"{url}/?{urlencode({'query': statement})}", body=body)
    assert response.status == 200, response.data.decode(errors="replace")[:500]


def show(label: str, figures: dict, baseline: dict) -> None:
    ratio = figures["p50_ms"] / baseline["p50_ms"]
    print(f"{label:58} p50 {figures['p50_ms']:7.1f} ms  p99 {figures['p99_ms']:7.1f} ms  {ratio:6.1f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-view-cost-"))
    server = embedded_server.start(work / "clickhouse")
    try:
        settings = Settings(clickhouse_http_port=server.port, data_dir=work / "state")
        assert migrate(settings, capture=True).returncode == 0
        dataset = generate(seed=7, users=40, workflows_per_user=25)
        print(f"machine: {machine()}")

        print("\n1. a one-event insert, every view attached, against the same event into a Null table, no views")
        execute(server, "CREATE DATABASE IF NOT EXISTS bench")
        for topic in TOPICS:
            # A Null copy of the landing table: the same columns and parse, nothing behind it.
            execute(server, f"CREATE TABLE bench.{topic}_queue AS analytics.{topic}_queue ENGINE = Null")
            messages = [json.dumps(message).encode() for message in dataset.messages[topic]]
            statement = insert_statement(topic)
            alone = statement.replace("analytics.", "bench.")
            baseline = timings(lambda n, s=alone, m=messages: post(server.url, s, m[n % len(m)]), args.samples)
            chain = timings(lambda n, s=statement, m=messages: post(server.url, s, m[-1 - n % len(m)]), args.samples)
            show(f"{topic}: Null table, no views (baseline)", baseline, baseline)
            show(f"{topic}: landing table, every view", chain, baseline)

        print("\n2. each materialized view's SELECT over its empty source, against SELECT 1")
        one = timings(lambda n: execute(server, "SELECT 1 FORMAT Null"), args.samples)
        show("SELECT 1 (baseline)", one, one)
        views = query(
            server,
            "SELECT name, as_select FROM system.tables"
            " WHERE database = 'analytics' AND engine = 'MaterializedView' ORDER BY name",
        )
        costs = []
        for view in views:
            sql = f"{view['as_select']} FORMAT Null"
            costs.append((view["name"], timings(lambda n, s=sql: execute(server, s), args.samples)))
        for name, figures in sorted(costs, key=lambda item: -item[1]["p50_ms"]):
            show(name, figures, one)

        print("\n3. the engine's cost per expression node: a SELECT of k conditions of four nodes each")
        for k in (1, 20, 100):
            conditions = " AND ".join(f"(number = {i} OR toString(number) = 'x{i}')" for i in range(k))
            sql = f"SELECT {conditions} FROM numbers(1) FORMAT Null"
            show(f"{k} conditions", timings(lambda n, s=sql: execute(server, s), args.samples), one)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
