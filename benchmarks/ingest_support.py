"""Events, Kafka and process helpers for benchmarks/bench_ingest.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import urllib3
from confluent_kafka import Consumer, Producer, TopicPartition

from core.names import TOPICS
from events.kafka import PRODUCER_SETTINGS

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=600), maxsize=32)
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


def post(url: str, query: str, body: bytes, **settings: str) -> None:
    response = HTTP.request("POST", f"{url}/?{urlencode({'query': query, **settings})}", body=body)
    assert response.status == 200, response.data[:500]


def insert(url: str, database: str, messages: dict[str, list[bytes]], block: int, **settings: str) -> float:
    """JSONEachRow batches of `block` events into `<database>.<topic>_queue`; returns seconds."""
    started = time.perf_counter()
    for topic, batch in messages.items():
        query = f"INSERT INTO {database}.{topic}_queue FORMAT JSONEachRow"
        for start in range(0, len(batch), block):
            post(url, query, b"\n".join(batch[start : start + block]), **settings)
    return time.perf_counter() - started


def small_batches(url: str, messages: dict[str, list[bytes]], size: int, senders: int, **settings: str) -> float:
    """Every topic's events in inserts of `size` events from `senders` concurrent senders, each on
    its own keep-alive connection and waiting for its answer before it sends again; returns seconds.

    The senders are coroutines of one aiohttp event loop. They share the two cores with the server,
    so they must cost it little: against an ASGI app that only answers 200, 20 threads of urllib3
    used about 385 µs of CPU a request (most of it contending for the GIL), aiohttp about 70.
    """
    bodies = [
        (f"{url}/?{urlencode({'query': f'INSERT INTO analytics.{topic}_queue FORMAT JSONEachRow', **settings})}", body)
        for topic, batch in messages.items()
        for body in (b"\n".join(batch[start : start + size]) for start in range(0, len(batch), size))
    ]

    async def send_all() -> float:
        pending = iter(bodies)
        connector = aiohttp.TCPConnector(limit=senders)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:

            async def sender() -> None:
                for target, body in pending:
                    async with session.post(target, data=body) as response:
                        answer = await response.read()
                        assert response.status == 200, answer[:500]

            started = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(senders)))
            return time.perf_counter() - started

    return asyncio.run(send_all())


def a_tenth(messages: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    """The first tenth of every topic's events: where each insert pays the whole chain, enough to tell the rate."""
    return {topic: batch[: len(batch) * 100 // 1000 + 1] for topic, batch in messages.items()}


def sdk_senders(url: str, messages: dict[str, list[bytes]], size: int, senders: int, async_insert: bool) -> float:
    """The SDK's way: `senders` threads, each with its own ClickHouseSink, emitting `size` events of
    one topic at a time (each emit returns once the server answered); returns seconds."""
    from events import ClickHouseSink, Event

    batches = [
        [Event.from_dict(json.loads(value)) for value in batch[start : start + size]]
        for batch in messages.values()
        for start in range(0, len(batch), size)
    ]
    sinks = [ClickHouseSink(url, async_insert=async_insert, max_retries=0) for _ in range(senders)]

    def send(number: int) -> None:
        for batch in batches[number::senders]:
            sinks[number].emit(batch)

    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, range(senders)))
    seconds = time.perf_counter() - started
    for number, sink in enumerate(sinks):
        assert sink.stats.delivered == sum(map(len, batches[number::senders])), sink.stats
        sink.close()
    return seconds


def producer(bootstrap: str, **extra) -> Producer:
    """A producer set as the SDK's KafkaSink sets its own (the services' way to Kafka), with room
    in its queue and batches for a backlog."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            **PRODUCER_SETTINGS,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 2_000_000,
            **extra,
        }
    )


def key_of(value: bytes) -> bytes:
    return value[value.find(b'"workflow_id":"') + 15 :][:24]


def produce(bootstrap: str, prefix: str, messages: dict[str, list[bytes]]) -> None:
    out = producer(bootstrap)
    for topic, batch in messages.items():
        for n, value in enumerate(batch):
            out.produce(prefix + topic, value, key=key_of(value))
            if n % 100_000 == 0:
                out.poll(0)
    assert out.flush(300) == 0


class Lag:
    """Messages of a backlog its consumer groups have not committed yet. The topics' ends are read
    once (the backlog is produced before), and each read of the commits reuses one client a group:
    a read takes a few milliseconds, where a new client a read took about 180, a bias of its own on
    a run of a few seconds."""

    def __init__(self, bootstrap: str, group_prefix: str, prefix: str, topics=TOPICS):
        self.groups: list[tuple[Consumer, list[TopicPartition], dict[int, int]]] = []
        for topic in topics:
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group_prefix}_{topic}"})
            name = prefix + topic
            numbers = consumer.list_topics(name, timeout=10).topics[name].partitions
            partitions = [TopicPartition(name, number) for number in numbers]
            ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions}
            self.groups.append((consumer, partitions, ends))

    def remaining(self) -> int:
        remaining = 0
        for consumer, partitions, ends in self.groups:
            for tp in consumer.committed(partitions, timeout=10):
                low, high = ends[tp.partition]
                remaining += high - (tp.offset if tp.offset >= 0 else low)
        return remaining

    def close(self) -> None:
        for consumer, _, _ in self.groups:
            consumer.close()


def ingest_process(
    settings, prefix: str, group_prefix: str, log: Path, *args: str, metrics_port: int = 0, consumers: int = 1
) -> subprocess.Popen:
    env = {
        **os.environ,
        "ANALYTICS_KAFKA_CONSUMERS": str(consumers),
        "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
        "ANALYTICS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ANALYTICS_KAFKA_TOPIC_PREFIX": prefix,
        "ANALYTICS_KAFKA_CONSUMER_GROUP_PREFIX": group_prefix,
        "ANALYTICS_DATA_DIR": str(settings.data_dir),
        "ANALYTICS_LOG_LEVEL": "WARNING",
        "ANALYTICS_INGEST_METRICS_PORT": str(metrics_port),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "analytics.cli", "ingest", "--no-create-topics", *args],
        cwd=ROOT,
        env=env,
        stdout=open(log, "ab"),  # noqa: SIM115 - owned by the child
        stderr=subprocess.STDOUT,
    )


def merge_seconds(url: str) -> float:
    """Seconds the server has spent merging parts so far (ProfileEvents MergeTotalMilliseconds)."""
    query = "SELECT sum(value) FROM system.events WHERE event = 'MergeTotalMilliseconds'"
    return float(HTTP.request("POST", f"{url}/", body=query.encode()).data.decode().strip() or 0) / 1000


def merges_settled(url: str, quiet: float = 3.0) -> None:
    """Return once no merge is running and none has finished for `quiet` seconds."""
    last, since = merge_seconds(url), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.2)
        running = HTTP.request("POST", f"{url}/", body=b"SELECT count() FROM system.merges").data.strip() != b"0"
        now = merge_seconds(url)
        if running or now != last:
            last, since = now, time.monotonic()


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory of a process and its children: now and the peak (VmHWM), in MiB."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    now = peak = 0.0
    for one in pids:
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{one}/status").read_text().splitlines())
        except OSError:
            continue
        now += int(fields["VmRSS"].split()[0]) / 1024
        peak += int(fields["VmHWM"].split()[0]) / 1024
    return {"rss_mib": now, "peak_rss_mib": peak}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuUse:
    """CPU-seconds each of some processes uses from now on: `CpuUse({"server": pid}).since()`."""

    def __init__(self, processes: dict[str, int]):
        self.processes = processes
        self.before = {name: cpu_seconds(pid) for name, pid in processes.items()}

    def since(self) -> dict[str, float]:
        return {f"{name}_cpu_s": cpu_seconds(pid) - self.before[name] for name, pid in self.processes.items()}


class _Message:
    """What row_binary reads of a consumed Kafka message."""

    def __init__(self, value: bytes, partition: int, offset: int):
        self._value, self._partition, self._offset = value, partition, offset

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_796_000_000_000)


def insert_framed(url: str, messages: dict[str, list[bytes]], block: int) -> float:
    """The bridge's framing without Kafka: RowBinary rows into `<topic>_messages`; returns seconds."""
    from embedded.bridge.framing import row_binary

    framed = {
        topic: [
            row_binary(topic.encode(), [_Message(v, 0, start + n) for n, v in enumerate(batch[start : start + block])])
            for start in range(0, len(batch), block)
        ]
        for topic, batch in messages.items()
    }
    started = time.perf_counter()
    for topic, bodies in framed.items():
        for body in bodies:
            post(url, f"INSERT INTO analytics.{topic}_messages FORMAT RowBinary", body)
    return time.perf_counter() - started


def bridge_inserts(metrics_port: int) -> tuple[float, float]:
    """(inserts, messages inserted) so far, from the bridge's Prometheus metrics."""
    text = HTTP.request("GET", f"http://127.0.0.1:{metrics_port}/metrics").data.decode()
    inserts = messages = 0.0
    for line in text.splitlines():
        if line.startswith("analytics_bridge_insert_seconds_count"):
            inserts += float(line.rsplit(" ", 1)[1])
        elif line.startswith("analytics_bridge_inserted_total"):
            messages += float(line.rsplit(" ", 1)[1])
    return inserts, messages


def all_visible(url: str, prefix: str, messages: dict[str, list[bytes]]) -> bool:
    """Whether every event of the data set is in raw history (each event id is unique there)."""
    tables = {"workflows": "workflow_events", "jobs": "job_events", "job_logs": "job_log_events"}
    sql = " UNION ALL ".join(
        f"SELECT count() = {len(messages[topic])} FROM analytics.{table} WHERE startsWith(event_id, '{prefix}-')"
        for topic, table in tables.items()
    )
    return HTTP.request("POST", url + "/", body=sql.encode()).data.split() == [b"1"] * 3


@dataclass
class RunningBridge:
    """An `analytics ingest` process and the topic prefix it consumes."""

    process: subprocess.Popen
    prefix: str
    metrics_port: int

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)
