"""Fewer and wider views, measured: the two job gates as one gated table, against the schema's own.

A job event's chain runs two first-seen gates behind raw history (`job_first_seen` and
`job_completions`), each with its `seen_keys` write and its views into `workflow_totals` and
`workflow_daily`, and `job_completions` one more into `job_duration_daily`: nine views. The
variant here, built beside the schema on the same server and never shipped, puts both kinds of
row into one table (`job_milestones`) through one gate with one key lookup, read by four views:
five. Against the schema's own chain in the same run (the baseline), alternating on one server
with merges stopped, it times a one-event job insert and a block of 37,800 job events (2,520 of
bench_ingest's workflows), with the server's CPU for each, and first checks that both chains
count a dataset sent twice the same.

The variant's key lookup is one SELECT: written as two SELECTs joined by UNION ALL inside `IN`,
EmbeddedRocksDB no longer looked the keys up but read the whole store.

    .venv/bin/python -m benchmarks.bench_wider_views [--rounds 4]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_http_front import machine, p99
from benchmarks.ingest_support import cpu_seconds, generate, post
from core.settings.composed import Settings
from operations.migrate import migrate
from tests import embedded_server
from tests.intake import execute, query

ENDS = "event_name in ('completed', 'failed', 'cancelled')"
VARIANT = [
    """CREATE TABLE analytics.job_milestones (
        user_id String, workflow_id String, job_id String, milestone LowCardinality(String),
        at DateTime64(3, 'UTC'), outcome LowCardinality(String), started_at Nullable(DateTime64(3, 'UTC')),
        duration_seconds UInt64, duration Float64, dedup_key FixedString(16)
    ) ENGINE = ReplacingMergeTree ORDER BY (user_id, workflow_id, job_id, milestone)""",
    f"""CREATE MATERIALIZED VIEW analytics.job_milestones_from_job_events_mv TO analytics.job_milestones AS
    with incoming as (
        select * from (
            select user_id, workflow_id, job_id, 'first_seen' as milestone, min(event_time) as at,
                '' as outcome, cast(null as Nullable(DateTime64(3, 'UTC'))) as started_at,
                toUInt64(0) as duration_seconds, toFloat64(0) as duration,
                sipHash128('job', workflow_id, job_id) as dedup_key
            from analytics.job_events group by user_id, workflow_id, job_id)
        union all
        select * from (
            select user_id, workflow_id, job_id, 'end' as milestone,
                if(event_name = 'cancelled', event_time, assumeNotNull(completed_at)) as at,
                event_name as outcome, started_at,
                if(event_name = 'cancelled', 0,
                    toUInt64(intDiv(dateDiff('millisecond', started_at, completed_at), 1000))) as duration_seconds,
                if(event_name = 'cancelled', 0, dateDiff('millisecond', started_at, completed_at) / 1000) as duration,
                sipHash128('job_end', workflow_id, job_id) as dedup_key
            from analytics.job_events where {ENDS}
            order by event_time limit 1 by dedup_key)
    )
    select * from incoming
    where dedup_key not in (
        select key from analytics.seen_keys
        where key in (
            select arrayJoin(if({ENDS},
                [sipHash128('job', workflow_id, job_id), sipHash128('job_end', workflow_id, job_id)],
                [sipHash128('job', workflow_id, job_id)]))
            from analytics.job_events))""",
    """CREATE MATERIALIZED VIEW analytics.seen_keys_from_job_milestones_mv TO analytics.seen_keys AS
    select dedup_key as key from analytics.job_milestones""",
]
COUNTERS = """
    toInt64(0) as workflow_events,
    toInt64(sum(milestone = 'first_seen')) as jobs,
    toInt64(sum(outcome = 'completed')) as jobs_completed,
    toInt64(sum(outcome = 'failed')) as jobs_failed,
    toInt64(sum(outcome = 'cancelled')) as jobs_cancelled,
    toInt64(sum(if(outcome in ('completed', 'failed'), duration_seconds, 0))) as job_execution_seconds,
    toInt64(0) as joblogs
    from analytics.job_milestones group by all"""
VARIANT += [
    "CREATE MATERIALIZED VIEW analytics.workflow_totals_from_job_milestones_mv TO analytics.workflow_totals AS"
    " select user_id, workflow_id, max('') as kind, minOrNull(at) as first_event_at, maxOrNull(at) as last_event_at,"
    + COUNTERS,
    "CREATE MATERIALIZED VIEW analytics.workflow_daily_from_job_milestones_mv TO analytics.workflow_daily AS"
    " select user_id, workflow_id, toDate(at) as day, max('') as kind," + COUNTERS,
    "CREATE MATERIALIZED VIEW analytics.job_duration_daily_from_job_milestones_mv TO analytics.job_duration_daily AS"
    " select user_id, workflow_id, toDate(at) as day,"
    " quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(duration) as duration_seconds_quantiles"
    " from analytics.job_milestones where outcome in ('completed', 'failed') group by all",
]
# The views an insert into job_events triggers directly; detaching them takes their chains out.
SCHEMA_GATES = ("job_first_seen_from_job_events_mv", "job_completions_from_job_events_mv")
VARIANT_GATES = ("job_milestones_from_job_events_mv",)


def use(server, variant: bool) -> None:
    """Attach one chain's gates behind job_events and detach the other's."""
    attached = {row["name"] for row in query(server, "SELECT name FROM system.tables WHERE database = 'analytics'")}
    for name in VARIANT_GATES if not variant else SCHEMA_GATES:
        if name in attached:
            execute(server, f"DETACH TABLE analytics.{name}")
    for name in VARIANT_GATES if variant else SCHEMA_GATES:
        if name not in attached:
            execute(server, f"ATTACH TABLE analytics.{name}")


def insert_jobs(server, events: list[bytes]) -> None:
    post(server.url, "INSERT INTO analytics.jobs_queue FORMAT JSONEachRow", b"\n".join(events))


def counted(server, prefix: str) -> dict:
    [row] = query(
        server,
        "SELECT sum(jobs) AS jobs, sum(jobs_completed) AS completed, sum(jobs_failed) AS failed,"
        " sum(job_execution_seconds) AS seconds FROM analytics.workflow_totals"
        f" WHERE startsWith(workflow_id, '{prefix}-')",
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4, help="each: 12 one-event inserts and 2 blocks per chain")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-wider-views-"))
    server = embedded_server.start(work / "clickhouse")
    try:
        settings = Settings(clickhouse_http_port=server.port, data_dir=work / "state", kafka_bootstrap="localhost:1")
        assert migrate(settings, capture=True).returncode == 0
        for statement in VARIANT:
            execute(server, statement)
        use(server, variant=False)
        execute(server, "SYSTEM STOP MERGES")
        for variant in (False, True):
            use(server, variant)
            prefix = f"check{int(variant)}"
            jobs = generate(prefix, 200)["jobs"]
            insert_jobs(server, jobs)
            insert_jobs(server, jobs)  # every event again: the gates drop them
            print(f"{'variant' if variant else 'schema '}: {counted(server, prefix)}", flush=True)
        for grown in range(4):  # about 150,000 job events stored before the timing
            insert_jobs(server, generate(f"grown{grown}", 2520)["jobs"])

        pid, sent = server.process.pid, 0
        times = {variant: {"one": [], "one_cpu": [], "block": [], "block_cpu": []} for variant in (False, True)}
        for round_number in range(args.rounds):
            for variant in (False, True) if round_number % 2 == 0 else (True, False):
                use(server, variant)
                for kind, count, workflows in (("one", 12, 1), ("block", 2, 2520)):
                    for _ in range(count):
                        sent += 1
                        jobs = generate(f"{kind}{sent}", workflows)["jobs"]
                        events = jobs[2:3] if kind == "one" else jobs  # one: a job's completion
                        cpu, started = cpu_seconds(pid), time.perf_counter()
                        insert_jobs(server, events)
                        times[variant][kind].append(time.perf_counter() - started)
                        times[variant][f"{kind}_cpu"].append(cpu_seconds(pid) - cpu)

        print(f"machine: {machine()}")
        for kind, label in (("one", "one-event job insert"), ("block", "block of 37,800 job events")):
            base = statistics.median(times[False][kind])
            for variant in (False, True):
                samples = times[variant][kind]
                median = statistics.median(samples)
                cpu = statistics.mean(times[variant][f"{kind}_cpu"]) * 1e3
                name = "one gated table, five views" if variant else "the schema's two gates, nine views (baseline)"
                print(
                    f"{label:28} {name:46} p50 {median * 1e3:7.1f} ms  p99 {p99(samples) * 1e3:7.1f} ms"
                    f"  {median / base:5.2f}x  server CPU {cpu:6.1f} ms  ({len(samples)} inserts)"
                )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
