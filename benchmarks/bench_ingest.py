"""Ingest into the aggregates: through Kafka and the bridge, next to a plain insert, in one run.

Baseline: the same kind of events POSTed to the landing tables over HTTP (JSONEachRow batches
of the bridge's block size), every materialized view attached. Measured: a backlog produced to
Kafka and consumed by `analytics ingest` until the consumer lag is 0. The two data sets have
different event ids (the first-seen gate would otherwise drop the second as duplicates).
Freshness: single events produced at a steady rate while the bridge is idle, timed from
produce to visible in SQL (raw history and the aggregates are written by the same insert).

    .venv/bin/python -m benchmarks.bench_ingest [--workflows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import urllib3
from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks.bench_http_front import machine
from core.names import TOPICS
from core.settings.composed import Settings
from embedded.kafka.broker import KafkaBroker, free_port
from embedded.kafka.jars import ensure_jars
from embedded.kafka.topics import create_topics
from operations.migrate import migrate
from tests import embedded_server

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=600))
ROOT = Path(__file__).resolve().parent.parent


def generate(prefix: str, workflows: int) -> dict[str, list[bytes]]:
    """Per workflow: created; 5 jobs created → started → completed/failed; 2 log events per job."""
    out: dict[str, list[bytes]] = {"workflows": [], "jobs": [], "job_logs": []}
    base = "2026-11-20T10:00:00"
    for w in range(workflows):
        user, workflow = f"{prefix}-u{w % 1000}", f"{prefix}-w{w}"
        ids = f'"user_id":"{user}","workflow_id":"{workflow}"'
        out["workflows"].append(
            f'{{"event_id":"{prefix}-we{w}","event_time":"{base}.000Z","event_type":"workflow",'
            f'"event_name":"created",{ids},"kind":"CONTAINER"}}'.encode()
        )
        for j in range(5):
            job = f'{ids},"job_id":"{workflow}-j{j}"'
            times = f'"started_at":"{base}.100Z","completed_at":"2026-11-20T10:0{j + 1}:00.500Z"'
            fate = "failed" if j == 4 else "completed"
            out["jobs"] += [
                f'{{"event_id":"{prefix}-jc{w}-{j}","event_time":"{base}.050Z","event_type":"job",'
                f'"event_name":"created",{job},"status":"pending"}}'.encode(),
                f'{{"event_id":"{prefix}-js{w}-{j}","event_time":"{base}.100Z","event_type":"job",'
                f'"event_name":"started",{job},"status":"running","started_at":"{base}.100Z"}}'.encode(),
                f'{{"event_id":"{prefix}-jd{w}-{j}","event_time":"2026-11-20T10:0{j + 1}:00.500Z","event_type":"job",'
                f'"event_name":"{fate}",{job},"status":"{fate.upper()}",{times}}}'.encode(),
            ]
            for n in range(2):
                out["job_logs"].append(
                    f'{{"event_id":"{prefix}-l{w}-{j}-{n}","event_time":"{base}.200Z","event_type":"job_log",'
                    f'"event_name":"created",{job},"count":{10 + n}}}'.encode()
                )
    return out


def total(messages: dict[str, list[bytes]]) -> int:
    return sum(len(batch) for batch in messages.values())


def plain_insert(server, messages: dict[str, list[bytes]], block: int) -> float:
    started = time.perf_counter()
    for topic, batch in messages.items():
        query = urlencode({"query": f"INSERT INTO analytics.{topic}_queue FORMAT JSONEachRow"})
        for start in range(0, len(batch), block):
            response = HTTP.request("POST", f"{server.url}/?{query}", body=b"\n".join(batch[start : start + block]))
            assert response.status == 200, response.data[:500]
    return time.perf_counter() - started


def produce(bootstrap: str, prefix: str, messages: dict[str, list[bytes]]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "enable.idempotence": True,
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    for topic, batch in messages.items():
        for n, value in enumerate(batch):
            producer.produce(prefix + topic, value, key=value[value.find(b'"workflow_id":"') + 15 :][:24])
            if n % 100_000 == 0:
                producer.poll(0)
    assert producer.flush(300) == 0


def lag(bootstrap: str, group_prefix: str, prefix: str) -> int:
    remaining = 0
    for topic in TOPICS:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group_prefix}_{topic}"})
        try:
            name = prefix + topic
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            for tp in consumer.committed([TopicPartition(name, p) for p in partitions], timeout=10):
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                remaining += high - (tp.offset if tp.offset >= 0 else low)
        finally:
            consumer.close()
    return remaining


def ingest_process(settings: Settings, prefix: str, group_prefix: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
        "ANALYTICS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ANALYTICS_KAFKA_TOPIC_PREFIX": prefix,
        "ANALYTICS_KAFKA_CONSUMER_GROUP_PREFIX": group_prefix,
        "ANALYTICS_DATA_DIR": str(settings.data_dir),
        "ANALYTICS_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "analytics.cli", "ingest", "--no-create-topics"],
        cwd=ROOT,
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )  # noqa: SIM115


def visible(server, event_id: str) -> bool:
    response = HTTP.request(
        "POST",
        server.url + "/",
        body=(
            f"SELECT count() FROM analytics.job_log_events WHERE event_id = '{event_id}' "
            f"AND user_id = 'fresh' AND workflow_id = 'fresh-w' AND job_id = 'fresh-j'"
        ).encode(),
    )
    return response.data.strip() == b"1"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=20_000, help="each gives 26 events")
    parser.add_argument("--probes", type=int, default=100)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server = embedded_server.start(work / "clickhouse")
    broker = KafkaBroker(work / "kafka", free_port(), jars_dir=ROOT / ".analytics" / "kafka")
    ensure_jars(ROOT / ".analytics" / "kafka")
    broker.start()
    settings = Settings(clickhouse_http_port=server.port, data_dir=work / "state", kafka_bootstrap=broker.bootstrap)
    assert migrate(settings, capture=True).returncode == 0
    results: dict[str, dict] = {}
    try:
        baseline = generate("plain", args.workflows)
        events = total(baseline)
        seconds = plain_insert(server, baseline, settings.kafka_max_block_size)
        results["plain HTTP insert, all views"] = {
            "events": events,
            "seconds": seconds,
            "events_per_s": events / seconds,
        }

        prefix, group_prefix = f"bench{uuid.uuid4().hex[:6]}.", f"bench{uuid.uuid4().hex[:6]}"
        create_topics(broker.bootstrap, 2, names=tuple(prefix + t for t in TOPICS))
        through_kafka = generate("kafka", args.workflows)
        produce(broker.bootstrap, prefix, through_kafka)
        process = ingest_process(settings, prefix, group_prefix, work / "ingest.log")
        # The clock starts at the first commit, so joining the consumer groups is not counted.
        while (remaining := lag(broker.bootstrap, group_prefix, prefix)) >= events:
            assert process.poll() is None, (work / "ingest.log").read_text()[-3000:]
            time.sleep(0.05)
        started, consumed_before = time.perf_counter(), events - remaining
        while lag(broker.bootstrap, group_prefix, prefix) > 0:
            assert process.poll() is None, (work / "ingest.log").read_text()[-3000:]
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        measured = events - consumed_before
        results["Kafka backlog through the bridge"] = {
            "events": measured,
            "seconds": seconds,
            "events_per_s": measured / seconds,
            "ratio_to_plain": (measured / seconds) / results["plain HTTP insert, all views"]["events_per_s"],
        }

        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
        delays = []
        for n in range(args.probes):
            event_id = f"fresh-{uuid.uuid4().hex}"
            value = json.dumps(
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
            sent = time.perf_counter()
            producer.produce(prefix + "job_logs", value, key=b"fresh-w")
            producer.flush(10)
            while not visible(server, event_id):
                time.sleep(0.005)
            delays.append(time.perf_counter() - sent)
            time.sleep(0.05 + (n % 7) * 0.03)  # spread the probes over the flush interval
        delays.sort()
        results["freshness, produce to visible in SQL"] = {
            "p50_ms": statistics.median(delays) * 1e3,
            "p99_ms": delays[int(len(delays) * 0.99) - 1] * 1e3,
            "max_ms": delays[-1] * 1e3,
            "flush_interval_ms": settings.kafka_flush_interval_ms,
        }
        process.terminate()
        process.wait(60)
    finally:
        broker.stop()
        server.stop()

    print(f"machine: {machine()}")
    for name, row in results.items():
        print(f"\n{name}")
        for key, value in row.items():
            print(f"  {key:22s} {value:,.3f}" if isinstance(value, float) else f"  {key:22s} {value:,}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
