"""Prometheus metrics, scraped as Prometheus would: the HTTP interface and `analytics ingest`. The one
endpoint of `analytics up` that carries the HTTP interface's, the bridge's and the gRPC service's is
checked in tests/test_up.py, beside the bridge it counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from embedded.bridge.config import config_from, prepare_topics
from tests.embedded_server import free_port, stop_process
from tests.intake import HTTP, insert_statement, post_batch, query
from tests.malformed import valid_event
from tests.test_bridge import settings_for

ROOT = Path(__file__).resolve().parent.parent


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a /metrics page."""
    response = HTTP.request("GET", url)
    assert response.status == 200, response.status
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.data.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_http_interface_counts_queries_inserts_errors_and_rows(analytics_db):
    before = scrape(f"{analytics_db.url}/metrics")
    user = f"m{uuid.uuid4().hex[:8]}"
    events = [valid_event("job_logs", n, user) for n in range(3)]
    url = f"{analytics_db.url}/?{urlencode({'query': insert_statement('job_logs')})}"
    assert HTTP.request("POST", url, body="\n".join(map(json.dumps, events)).encode()).status == 200
    assert HTTP.request("POST", f"{analytics_db.url}/?query=SELECT%201").status == 200
    assert HTTP.request("POST", f"{analytics_db.url}/?query=SELECT%20nope").status == 404
    assert HTTP.request("POST", url, body=b"{broken").status == 400
    after = scrape(f"{analytics_db.url}/metrics")

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("analytics_http_requests_total", kind="insert") == 2
    assert grew("analytics_http_requests_total", kind="query") == 2
    assert grew("analytics_http_errors_total", kind="query", code="47") == 1  # UNKNOWN_IDENTIFIER
    insert_errors = {key for key in after if key[0] == "analytics_http_errors_total" and ("kind", "insert") in key[1]}
    assert sum(after[key] - before.get(key, 0) for key in insert_errors) == 1  # a parse error, by its code
    assert grew("analytics_http_written_rows_total") >= 3
    assert grew("analytics_http_request_seconds_count", kind="insert") == 2


def test_written_rows_count_each_insert_once_joined_answered_early_or_sent_in_the_body(analytics_db):
    """The rows of a joined asynchronous insert were added once for every sender it answered (eight
    senders of five events each: eight times the rows), those of a sender answered at once
    (wait_for_async_insert=0) never, and an INSERT sent in the body was counted as `other`, its rows
    not at all. Each insert now adds what it wrote, once."""
    user = f"w{uuid.uuid4().hex[:8]}"
    batches = [[valid_event("telemetry", sender * 5 + n, user) for n in range(5)] for sender in range(10)]
    alone = post_batch(analytics_db, "telemetry", batches[0])  # what five such events write
    assert alone.status == 200, alone.data.decode()
    per_batch = int(json.loads(alone.headers["X-ClickHouse-Summary"])["written_rows"])
    assert per_batch >= 5
    before = scrape(f"{analytics_db.url}/metrics")
    # Inserts of one key within a second join (the busy timeout, fixed at 1 s).
    joined = {"async_insert": 1, "async_insert_use_adaptive_busy_timeout": 0, "async_insert_busy_timeout_ms": 1000}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda batch: post_batch(analytics_db, "telemetry", batch, **joined), batches[1:9]))
    assert [answer.status for answer in answers] == [200] * 8
    summaries = [json.loads(answer.headers["X-ClickHouse-Summary"]) for answer in answers]
    assert max(int(summary["result_rows"]) for summary in summaries) > 5  # some of them were joined
    early = post_batch(analytics_db, "telemetry", batches[9][:3], async_insert=1, wait_for_async_insert=0)
    assert early.status == 200, early.data.decode()
    in_body = insert_statement("telemetry") + "\n" + "\n".join(map(json.dumps, batches[9][3:]))
    assert HTTP.request("POST", f"{analytics_db.url}/", body=in_body.encode()).status == 200
    stored = f"SELECT count() AS n FROM analytics.telemetry_events WHERE user_id = '{user}'"
    written = ("analytics_http_written_rows_total",)
    for _ in range(600):  # the early sender's batch is inserted, and counted, after its answer
        after = scrape(f"{analytics_db.url}/metrics")
        if (
            int(query(analytics_db, stored)[0]["n"]) == 50
            and value(after, *written) - value(before, *written) >= 9 * per_batch
        ):
            break
        time.sleep(0.05)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert int(query(analytics_db, stored)[0]["n"]) == 50
    assert grew("analytics_http_written_rows_total") == 9 * per_batch
    assert grew("analytics_http_requests_total", kind="insert") == 10
    assert grew("analytics_http_requests_total", kind="other") == 0


def ingest(settings, metrics_port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        **{key: value for key, value in settings.as_environment().items() if key.startswith("ANALYTICS_KAFKA")},
        "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
        "ANALYTICS_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "analytics.cli", "ingest", "--metrics-port", str(metrics_port)],
        cwd=ROOT,
        env=env,
        stdout=open(log, "ab"),  # noqa: SIM115 - the child's for its lifetime
        stderr=subprocess.STDOUT,
    )


def produce(kafka, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for value_ in values:
        producer.produce(topic, value_)
    assert producer.flush(30) == 0


def wait_for(condition, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout  # an upper bound on a shared machine, not a speed claim
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.3)
    return result


@pytest.mark.kafka
def test_analytics_ingest_serves_the_bridges_metrics(analytics_db, kafka, tmp_path):
    prefix = f"x{uuid.uuid4().hex[:8]}."
    settings = settings_for(analytics_db, kafka, prefix)
    prepare_topics(config_from(settings), create=True, partitions=1)
    user = f"m{uuid.uuid4().hex[:8]}"
    produce(kafka, prefix + "jobs", [json.dumps(valid_event("jobs", n, user)).encode() for n in range(4)] + [b"{"])
    port = free_port()
    process = ingest(settings, port, tmp_path / "ingest.log")
    url = f"http://127.0.0.1:{port}/metrics"
    try:

        def consumed():
            try:
                samples = scrape(url)
            except Exception:  # noqa: BLE001 - not serving yet
                return None
            done = value(samples, "analytics_bridge_inserted_total", topic="jobs") == 5
            return samples if done and value(samples, "analytics_dead_letters", topic=prefix + "jobs") == 1 else None

        samples = wait_for(consumed, "the bridge's metrics to show the batch", 120)
        assert process.poll() is None, (tmp_path / "ingest.log").read_text()
        assert value(samples, "analytics_bridge_messages_total", topic="jobs") == 5
        assert value(samples, "analytics_bridge_insert_seconds_count", topic="jobs") >= 1

        def caught_up():  # the gauge is measured every few seconds, and may first show the backlog
            samples = scrape(url)
            key = ("analytics_bridge_consumer_lag", (("partition", "0"), ("topic", "jobs")))
            return key in samples and samples[key] == 0

        wait_for(caught_up, "the lag gauge to show the partition caught up")
    finally:
        stop_process(process)
