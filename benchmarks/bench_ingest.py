"""Ingest into the aggregates, in one run: ClickHouse's parse rate, a plain insert, Kafka through the bridge.

Three rates of the same kind of events (workflow, job and job-log events as the tests make them),
measured one after another against one embedded ClickHouse and one Kafka broker:

1. parse: JSONEachRow into Null tables shaped like the landing tables, no views (what ClickHouse
   itself can take in; the baseline the targets are ratios of);
2. plain insert: the same events POSTed to the landing tables over HTTP in blocks of the bridge's
   size, every materialized view attached;
   Then the same through the bridge's framing without Kafka (RowBinary rows of the messages into
   `<topic>_messages`, parsed by the landing views), to tell the SQL parse from Kafka's share;
3. Kafka: a backlog produced to Kafka, consumed by `analytics ingest` until the consumer lag is 0,
   so the totals are exact (the data sets have different event ids, or the gate would drop them);
   twice: with one consumer a topic (the default, ANALYTICS_KAFKA_CONSUMERS=1), then one a
   partition (the topics have two). A consumer inserts one block at a time and each block runs the
   views on one thread, so with one consumer a topic the last blocks of the largest topic run alone.

Merges are stopped while the paths are timed (`SYSTEM STOP MERGES`) and timed after them: over
five inserts of 260,000 events the heavy merges fell in the second and fourth whatever path ran
there, and the framing and Kafka ran second and fourth. A path still costs more as the tables fill
(the first-seen gates and raw history hold what came before: a plain insert of 260,000 events took
2.6 CPU-seconds of the server into empty tables, 3.6 to 4.3 after 520,000 more, merges included),
and each path runs on the tables the paths before it filled. So a plain insert of new events is
measured again after the framing and after each Kafka run, and each of those paths also has
`ratio_to_plain_around`: its rate over the mean of the plain inserts just before and after it.
`merging_s` is the server's MergeTotalMilliseconds over a phase (0 while merges are stopped).

Then small batches (inserts of 10 events from 20 concurrent senders: plain; with asynchronous
inserts, each sender waiting for its answer; and not waiting, timed until every event is visible)
against the same events in large batches; the SDK's way (20 ClickHouseSinks, emits of 10
events, with and without the asynchronous inserts it asks for by default: rate and server CPU
per event); and freshness: events produced at half the measured Kafka rate, with probes timed
from produce to visible in SQL (raw history and the aggregates are written by the same insert),
with what the steady load cost: the bridge's inserts a second, messages an insert, the server's
CPU a message and the merges' time (a backlog's large inserts pay the per-insert costs rarely).
Every event goes to Kafka as the SDK's KafkaSink sends it (events.kafka.PRODUCER_SETTINGS).
Memory: resident and peak of the embedded ClickHouse and of the bridge. CPU: seconds each process
used per phase, and events per CPU-second (on a shared machine the steadier figure: what two idle
cores would give is about twice it).

    .venv/bin/python -m benchmarks.bench_ingest [--workflows 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from benchmarks.bench_http_front import machine
from benchmarks.ingest_support import (
    HTTP,
    ROOT,
    CpuUse,
    Lag,
    RunningBridge,
    a_tenth,
    all_visible,
    bridge_inserts,
    cpu_seconds,
    generate,
    ingest_process,
    insert,
    insert_framed,
    key_of,
    memory_mib,
    merge_seconds,
    merges_settled,
    post,
    produce,
    producer,
    sdk_senders,
    small_batches,
    total,
)
from core.names import TOPICS
from core.settings.composed import Settings
from embedded.kafka.broker import KafkaBroker, free_port
from embedded.kafka.jars import ensure_jars
from embedded.kafka.topics import create_topics
from operations.migrate import migrate
from tests import embedded_server

BENCH_TOPICS = ("workflows", "jobs", "job_logs")
PARTITIONS = 2  # of each benchmark topic
WATCH_INTERVAL_S = 0.05  # between the freshness probes' reads


def rate(events: int, seconds: float, **extra) -> dict:
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds, **extra}


def null_tables(url: str) -> None:
    """`bench_null.<topic>_queue`: the landing tables' columns on the Null engine, no views."""
    post(url, "CREATE DATABASE IF NOT EXISTS bench_null", b"")
    for topic in BENCH_TOPICS:
        post(url, f"CREATE TABLE IF NOT EXISTS bench_null.{topic}_queue AS analytics.{topic}_queue ENGINE = Null", b"")


def freshness(settings, broker, server, bridge, prefix: str, per_second: float, seconds: float) -> dict:
    """Produce steadily at `per_second` events/s with a probe every 50 ms; time each probe to visible.
    Also the CPU-seconds each process of the stack used meanwhile: on two cores they share them."""
    steady = generate(f"steady{uuid.uuid4().hex[:4]}", max(1, int(per_second * seconds / 26) + 1))
    stream = [(topic, value) for topic, batch in steady.items() for value in batch]
    stream.sort(key=lambda item: hash(item[1]))  # interleave the topics
    out = producer(broker.bootstrap)
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or len(seen) < len(sent):
            response = HTTP.request(
                "POST",
                server.url + "/",
                body=b"SELECT event_id FROM analytics.job_log_events WHERE user_id = 'fresh' FORMAT TSV",
            )
            now = time.perf_counter()
            for event_id in response.data.decode().split():
                if event_id in sent:  # not a probe of an earlier run on the same server
                    seen.setdefault(event_id, now)
            if done.is_set() and time.perf_counter() - stop_at > 30:
                return
            time.sleep(WATCH_INTERVAL_S)

    stop_at = float("inf")
    processes = {
        "server": server.process.pid,
        "bridge": bridge.process.pid,
        "broker": broker.process.pid,
        "producer_and_watcher": os.getpid(),
    }
    used = CpuUse(processes)
    inserts_before, merged = bridge_inserts(bridge.metrics_port), merge_seconds(server.url)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    next_probe = started
    produced = 0
    while (now := time.perf_counter()) - started < seconds and produced < len(stream):
        due = min(len(stream), int((now - started) * per_second))
        for topic, value in stream[produced:due]:
            out.produce(prefix + topic, value, key=key_of(value))
        produced = due
        if now >= next_probe:
            event_id = f"fresh-{uuid.uuid4().hex}"
            probe = json.dumps(
                {
                    "event_id": event_id,
                    "event_time": "2026-11-20T10:00:00Z",
                    "event_type": "job_log",
                    "event_name": "created",
                    "user_id": "fresh",
                    "workflow_id": "fresh-w",
                    "job_id": "fresh-j",
                    "count": 1,
                }
            ).encode()
            out.produce(prefix + "job_logs", probe, key=b"fresh-w")
            out.poll(0)
            sent[event_id] = time.perf_counter()
            next_probe += 0.05
        out.poll(0)
        time.sleep(0.002)
    achieved = produced / (time.perf_counter() - started)
    cpu = used.since()
    inserts_after = bridge_inserts(bridge.metrics_port)
    inserts, inserted = (after - before for after, before in zip(inserts_after, inserts_before, strict=True))
    merging = merge_seconds(server.url) - merged
    out.flush(60)
    stop_at = time.perf_counter()
    done.set()
    watcher.join(60)
    delays = sorted(seen[e] - sent[e] for e in sent if e in seen)
    missing = len(sent) - len(delays)
    return {
        "target_events_per_s": per_second,
        "produced_events_per_s": achieved,
        "probes": len(sent),
        "probes_not_visible": missing,
        "p50_ms": statistics.median(delays) * 1e3,
        "p99_ms": delays[max(0, int(len(delays) * 0.99) - 1)] * 1e3,
        "max_ms": delays[-1] * 1e3,
        "flush_interval_ms": settings.kafka_flush_interval_ms,
        **cpu,
        # What a steady load costs: every insert pays the views' planning and writes a part into each
        # table it reaches, which the merges then rewrite; a backlog's large inserts pay that rarely.
        "bridge_inserts_per_s": inserts / seconds,
        "messages_per_bridge_insert": inserted / max(inserts, 1),
        "server_cpu_us_per_message": cpu["server_cpu_s"] * 1e6 / max(inserted, 1),
        "merging_s": merging,
    }


def kafka_backlog(server, broker, settings, work: Path, consumers: int, args, parse_rate: float):
    """A backlog of `args.workflows` workflows' events produced to topics of their own, consumed by
    `analytics ingest` with `consumers` consumers a topic until the consumer lag is 0 (the totals
    exact). The clock starts at the first commit, so joining the consumer groups is not counted."""
    pid = server.process.pid
    prefix, group_prefix = f"bench{uuid.uuid4().hex[:6]}.", f"bench{uuid.uuid4().hex[:6]}"
    create_topics(broker.bootstrap, PARTITIONS, names=tuple(prefix + t for t in TOPICS))
    backlog = generate(f"kafka{consumers}", args.workflows)
    events = total(backlog)
    produce(broker.bootstrap, prefix, backlog)
    metrics_port = free_port()
    log = work / f"ingest-{consumers}.log"
    process = ingest_process(
        settings, prefix, group_prefix, log, *args.bridge_arg, metrics_port=metrics_port, consumers=consumers
    )
    bridge = RunningBridge(process, prefix, metrics_port)
    backlog_lag = Lag(broker.bootstrap, group_prefix, prefix, BENCH_TOPICS)
    try:
        while (remaining := backlog_lag.remaining()) >= events:
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.02)
        started, consumed_before = time.perf_counter(), events - remaining
        cpu, bridge_cpu, merged = cpu_seconds(pid), cpu_seconds(process.pid), merge_seconds(server.url)
        broker_cpu = cpu_seconds(broker.process.pid)
        while backlog_lag.remaining() > 0:
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.02)
    finally:
        backlog_lag.close()
    seconds = time.perf_counter() - started
    measured = events - consumed_before
    row = rate(
        measured,
        seconds,
        consumers_per_topic=consumers,
        ratio_to_parse=measured / seconds / parse_rate,
        server_cpu_s=cpu_seconds(pid) - cpu,
        bridge_cpu_s=cpu_seconds(process.pid) - bridge_cpu,
        broker_cpu_s=cpu_seconds(broker.process.pid) - broker_cpu,
        merging_s=merge_seconds(server.url) - merged,
    )
    inserts, inserted = bridge_inserts(metrics_port)
    row["messages_per_bridge_insert"] = inserted / max(inserts, 1)
    row["events_per_cpu_s"] = measured / (row["server_cpu_s"] + row["bridge_cpu_s"])
    return row, bridge


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=10_000, help="each gives 26 events")
    parser.add_argument("--small-workflows", type=int, default=385, help="events for the small-batch runs (x26)")
    parser.add_argument("--freshness-seconds", type=float, default=15.0)
    parser.add_argument("--bridge-arg", action="append", default=[], help="extra argument for analytics ingest")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server = embedded_server.start(work / "clickhouse")
    broker = KafkaBroker(work / "kafka", free_port(), jars_dir=ROOT / ".analytics" / "kafka")
    ensure_jars(ROOT / ".analytics" / "kafka")
    broker.start()
    settings = Settings(clickhouse_http_port=server.port, data_dir=work / "state", kafka_bootstrap=broker.bootstrap)
    assert migrate(settings, capture=True).returncode == 0
    null_tables(server.url)
    # No merging while the paths are timed: a merge falls in whichever phase the sizes of the parts
    # so far schedule it, not in the phase of the path that wrote them. What they wrote is merged after.
    post(server.url, "SYSTEM STOP MERGES", b"")
    block = settings.kafka_max_block_size
    pid = server.process.pid
    results: dict[str, dict] = {}
    bridges: list[RunningBridge] = []
    try:
        baseline = generate("plain", args.workflows)
        events = total(baseline)
        cpu = cpu_seconds(pid)
        results["parse: JSONEachRow into Null tables, no views"] = rate(
            events, insert(server.url, "bench_null", baseline, block)
        )
        used = cpu_seconds(pid) - cpu
        parse = results["parse: JSONEachRow into Null tables, no views"]
        parse.update(server_cpu_s=used, events_per_cpu_s=events / used)
        parse_rate = parse["events_per_s"]

        def plain_insert(data: dict[str, list[bytes]]) -> dict:
            cpu, merged = cpu_seconds(pid), merge_seconds(server.url)
            seconds = insert(server.url, "analytics", data, block)
            used = cpu_seconds(pid) - cpu
            return rate(
                events,
                seconds,
                ratio_to_parse=events / seconds / parse_rate,
                server_cpu_s=used,
                events_per_cpu_s=events / used,
                merging_s=merge_seconds(server.url) - merged,
            )

        def around(path: dict, before: dict, after: dict) -> float:
            """The path's rate over the mean of the plain inserts just before and after it."""
            return path["events_per_s"] / ((before["events_per_s"] + after["events_per_s"]) / 2)

        plain = plain_insert(baseline)
        results["plain HTTP insert, all views"] = plain
        results["plain HTTP insert, all views"].update(memory_mib(pid))

        framed = generate("framed", args.workflows)
        cpu, merged = cpu_seconds(pid), merge_seconds(server.url)
        seconds = insert_framed(server.url, framed, block)
        used, merged = cpu_seconds(pid) - cpu, merge_seconds(server.url) - merged
        framing = rate(
            events,
            seconds,
            ratio_to_plain=events / seconds / plain["events_per_s"],
            server_cpu_s=used,
            events_per_cpu_s=events / used,
            merging_s=merged,
        )
        results["the bridge's framing without Kafka: RowBinary into <topic>_messages"] = framing
        after_framing = plain_insert(generate("plain-again", args.workflows))
        results["plain HTTP insert again, after the framing"] = after_framing
        framing["ratio_to_plain_around"] = around(framing, plain, after_framing)

        # One consumer per topic (the default), then one per partition: a consumer inserts one block
        # at a time, and each block runs the views on one thread.
        before = after_framing
        for consumers, label in ((1, "one consumer a topic"), (PARTITIONS, "one consumer a partition")):
            kafka, bridge = kafka_backlog(server, broker, settings, work, consumers, args, parse_rate)
            bridges.append(bridge)
            kafka["ratio_to_plain"] = kafka["events_per_s"] / plain["events_per_s"]
            results[f"Kafka backlog through the bridge, {label}, to exact aggregates"] = kafka
            results[f"memory after the backlog: embedded ClickHouse ({label})"] = memory_mib(pid)
            results[f"memory after the backlog: bridge ({label})"] = memory_mib(bridge.process.pid)
            after = results[f"plain HTTP insert again, after Kafka with {label}"] = plain_insert(
                generate(f"plain-after-{consumers}", args.workflows)
            )
            kafka["ratio_to_plain_around"] = around(kafka, before, after)
            before = after
        # Only the default bridge goes on (freshness uses it): each bridge writes its lag every few
        # seconds, and two of them out of step would leave the merges no quiet moment to settle in.
        default, *others = bridges
        for bridge in others:
            bridge.stop()

        post(server.url, "SYSTEM START MERGES", b"")
        cpu, merged, started = cpu_seconds(pid), merge_seconds(server.url), time.perf_counter()
        merges_settled(server.url)
        results["merging what the timed phases wrote (merges were stopped while they ran)"] = {
            "seconds_until_settled": time.perf_counter() - started,
            "server_cpu_s": cpu_seconds(pid) - cpu,
            "merging_s": merge_seconds(server.url) - merged,
        }

        small = generate("small", args.small_workflows)
        large = generate("large", args.small_workflows)
        n = total(small)
        # What each process of the stack uses meanwhile: the senders share the two cores with the
        # server, and the default bridge and the broker idle beside them.
        stack = {"server": pid, "senders": os.getpid(), "bridge": default.process.pid, "broker": broker.process.pid}
        used, merged = CpuUse(stack), merge_seconds(server.url)
        large_rate = n / insert(server.url, "analytics", large, 100_000)
        large_used = used.since() | {"merging_s": merge_seconds(server.url) - merged}
        large_cpu = large_used["server_cpu_s"]
        # Without coalescing each small insert pays the whole view chain: 100 of them tell the rate.
        few = a_tenth(small)
        plain_small = total(few) / small_batches(server.url, few, 10, 20)
        small_async = generate("async", args.small_workflows)
        async_rate = n / small_batches(server.url, small_async, 10, 20, async_insert="1", wait_for_async_insert="1")
        nowait = generate("nowait", args.small_workflows)
        # The phases before left a part an insert in every table: their merges are theirs, not this one's.
        merges_settled(server.url)
        used, merged = CpuUse(stack), merge_seconds(server.url)
        started = time.perf_counter()
        small_batches(server.url, nowait, 10, 20, async_insert="1", wait_for_async_insert="0")
        answered = time.perf_counter() - started
        senders_cpu = used.since()["senders_cpu_s"]
        while not all_visible(server.url, "nowait", nowait):
            time.sleep(0.05)
        nowait_rate = n / (time.perf_counter() - started)
        nowait_used = used.since() | {"merging_s": merge_seconds(server.url) - merged}
        results["small batches: 10 events an insert, 20 senders"] = {
            "events": n,
            "large_batches_events_per_s": large_rate,
            "plain_events_per_s": plain_small,
            "plain_ratio_to_large": plain_small / large_rate,
            "async_insert_events_per_s": async_rate,
            "async_insert_ratio_to_large": async_rate / large_rate,
            "no_wait_answered_s": answered,
            "no_wait_until_visible_events_per_s": nowait_rate,
            "no_wait_ratio_to_large": nowait_rate / large_rate,
            **{f"large_{name}": value for name, value in large_used.items()},
            "no_wait_senders_cpu_s_until_answered": senders_cpu,
            **{f"no_wait_{name}": value for name, value in nowait_used.items()},
        }
        # The SDK's ClickHouseSink: asynchronous inserts (its default) against an insert per emit.
        sdk = {}
        for joined in (False, True):
            data = a_tenth(generate(f"sdk{int(joined)}", args.small_workflows))
            cpu = cpu_seconds(pid)
            sdk[joined] = (total(data) / sdk_senders(server.url, data, 10, 20, joined), cpu_seconds(pid) - cpu)
        results["SDK: 20 ClickHouseSinks, emits of 10 events, each waiting for its answer"] = {
            "events": total(data),
            "insert_an_emit_events_per_s": sdk[False][0],
            "insert_an_emit_server_cpu_ms_per_event": sdk[False][1] * 1e3 / total(data),
            "async_insert_events_per_s": sdk[True][0],
            "async_insert_server_cpu_ms_per_event": sdk[True][1] * 1e3 / total(data),
            "async_over_insert_an_emit_cpu": sdk[True][1] / sdk[False][1],
            "large_batches_server_cpu_ms_per_event": large_cpu * 1e3 / n,
        }

        # Freshness with the default bridge, one consumer a topic.
        kafka_rate = results["Kafka backlog through the bridge, one consumer a topic, to exact aggregates"][
            "events_per_s"
        ]
        results["freshness at half the Kafka rate, one consumer a topic"] = freshness(
            settings, broker, server, default, default.prefix, kafka_rate / 2, args.freshness_seconds
        )
        results["memory at the end: embedded ClickHouse"] = memory_mib(pid)
        results["memory at the end: bridge"] = memory_mib(default.process.pid)
    finally:
        for bridge in bridges:
            bridge.stop()
        broker.stop()
        server.stop()

    print(f"machine: {machine()}")
    for name, row in results.items():
        print(f"\n{name}")
        for key, value in row.items():
            print(f"  {key:28s} {value:,.3f}" if isinstance(value, float) else f"  {key:28s} {value:,}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
