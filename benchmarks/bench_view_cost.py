"""What one insert pays for the chain of views, whatever its size: where issue 12's small batches,
freshness and the test suite's time go.

Against one embedded ClickHouse with the schema built, in one run:

1. per topic, a one-event insert into its landing table with every view attached, against an
   event of the same kind inserted into a Null table of the same columns and no views (the baseline);
2. per materialized view, its own SELECT run over its (empty) source table: what planning the view
   costs each block before a single row moves, against ``SELECT 1`` (the baseline);
3. the engine's cost per expression node: a SELECT of k simple conditions, k = 1, 20, 100;
4. each landing view's parse per message (below);
5. each view alone over one large block, against JSONEachRow's parse of the block
   (benchmarks/view_profile.py): where a large insert's time goes, view by view.

Each figure is the median and p99 of ``--samples`` runs, with its ratio to the baseline. The
events are bench_ingest's (workflow, job and log events), each insert a new event.

    .venv/bin/python -m benchmarks.bench_view_cost [--samples 40]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks.bench_http_front import machine, p99, timed
from benchmarks.bench_ingest import BENCH_TOPICS, null_tables
from benchmarks.ingest_support import generate, post
from benchmarks.view_profile import each_view_alone
from core.settings.composed import Settings
from operations.migrate import migrate
from tests import embedded_server
from tests.intake import execute, query


def figures_of(seconds: list[float]) -> dict:
    return {"p50_ms": statistics.median(seconds) * 1e3, "p99_ms": p99(seconds) * 1e3}


def timings(run, samples: int) -> dict:
    """Median and p99 in milliseconds of ``samples`` calls of ``run``."""
    return figures_of(timed(run, samples))


def show(label: str, figures: dict, baseline: dict) -> None:
    ratio = figures["p50_ms"] / baseline["p50_ms"]
    print(f"{label:58} p50 {figures['p50_ms']:7.1f} ms  p99 {figures['p99_ms']:7.1f} ms  {ratio:6.1f}x", flush=True)


ONE_THREAD = " SETTINGS max_threads = 1"  # a view runs on the thread of the insert that feeds it


def parse_per_message(server, views: list[dict], workflows: int) -> None:
    """Each `<topic>_queue_from_<topic>_messages_mv`'s SELECT over bench_ingest's events as Kafka
    messages, on one thread as a view runs, minus reading them: microseconds a message (median of 7)."""
    events = generate("parse", workflows)
    execute(server, "CREATE DATABASE IF NOT EXISTS bench_parse")
    for topic in BENCH_TOPICS:
        table = f"bench_parse.{topic}_messages"
        execute(server, f"CREATE TABLE {table} AS analytics.{topic}_messages ENGINE = Memory")
        post(server.url, f"INSERT INTO {table} (payload) FORMAT JSONAsString", b"\n".join(events[topic]))
        [view] = [v for v in views if v["name"] == f"{topic}_queue_from_{topic}_messages_mv"]
        select = re.sub(rf"analytics\.`?{topic}_messages`?", table, view["as_select"])
        read_sql = f"SELECT * FROM {table} FORMAT Null{ONE_THREAD}"
        read = statistics.median(timed(lambda r=read_sql: execute(server, r), 7))
        parse = statistics.median(timed(lambda s=select: execute(server, f"{s} FORMAT Null{ONE_THREAD}"), 7))
        count = len(events[topic])
        print(
            f"{topic}: {count:,} messages, read {read * 1e3:.1f} ms, parsed {parse * 1e3:.1f} ms:"
            f" {(parse - read) / count * 1e6:.2f} us a message",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--parse-workflows", type=int, default=5000, help="events of section 4: 26 a workflow")
    parser.add_argument("--block-workflows", type=int, default=2520, help="section 5's block: 65,520 events")
    parser.add_argument("--grown-blocks", type=int, default=12, help="section 5: blocks through the chain first")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-view-cost-"))
    server = embedded_server.start(work / "clickhouse")
    try:
        settings = Settings(clickhouse_http_port=server.port, data_dir=work / "state")
        assert migrate(settings, capture=True).returncode == 0
        # Each insert a new event: one set for the Null tables, another for the landing tables.
        baseline_events, chain_events = generate("null", args.samples), generate("chain", args.samples)
        print(f"machine: {machine()}")

        print("\n1. a one-event insert through every view, against one of the same kind into a Null table")
        null_tables(server.url)  # bench_null.<topic>_queue: the landing tables' columns, nothing behind them
        for topic in BENCH_TOPICS:
            events = iter(baseline_events[topic])
            into_null = f"INSERT INTO bench_null.{topic}_queue FORMAT JSONEachRow"
            baseline = timings(lambda q=into_null, e=events: post(server.url, q, next(e)), args.samples)
            events = iter(chain_events[topic])
            into_chain = f"INSERT INTO analytics.{topic}_queue FORMAT JSONEachRow"
            chain = timings(lambda q=into_chain, e=events: post(server.url, q, next(e)), args.samples)
            show(f"{topic}: Null table, no views (baseline)", baseline, baseline)
            show(f"{topic}: landing table, every view", chain, baseline)

        print("\n2. each materialized view's SELECT over its empty source, against SELECT 1 run between its runs")
        select_one = "SELECT 1 FORMAT Null"
        views = query(
            server,
            "SELECT name, as_select FROM system.tables"
            " WHERE database = 'analytics' AND engine = 'MaterializedView' ORDER BY name",
        )
        costs = []
        for view in views:
            # The baseline alternates with the view, so a noisy moment of the machine weighs on both.
            sql = f"{view['as_select']} FORMAT Null"
            baseline, plan = [], []
            for _ in range(args.samples):
                baseline += timed(lambda: execute(server, select_one), 1)
                plan += timed(lambda s=sql: execute(server, s), 1)
            costs.append((view["name"], figures_of(plan), figures_of(baseline)))
        for name, figures, baseline in sorted(costs, key=lambda item: -item[1]["p50_ms"] / item[2]["p50_ms"]):
            show(name, figures, baseline)

        print("\n3. the engine's cost per expression node: a SELECT of k conditions of four nodes each")
        one = timings(lambda: execute(server, select_one), args.samples)
        show("SELECT 1 (baseline)", one, one)
        for k in (1, 20, 100):
            conditions = " AND ".join(f"(number = {i} OR toString(number) = 'x{i}')" for i in range(k))
            sql = f"SELECT {conditions} FROM numbers(1) FORMAT Null"
            show(f"{k} conditions", timings(lambda s=sql: execute(server, s), args.samples), one)

        print("\n4. each landing view's parse, per message: its SELECT over the messages held in a Memory table")
        parse_per_message(server, views, args.parse_workflows)

        print("\n5. each view alone over one block: its SELECT over the rows it was handed, into a copy of its target")
        each_view_alone(server, args.block_workflows, args.grown_blocks, samples=7)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
