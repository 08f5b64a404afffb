"""Deliver events the way producers do without Kafka: batches over the HTTP intake."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import urllib3

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=120))


def insert_statement(topic: str) -> str:
    if topic == "telemetry":
        return "INSERT INTO analytics.telemetry_queue (message) FORMAT JSONAsString"
    return f"INSERT INTO analytics.{topic}_queue FORMAT JSONEachRow"


def post_batch(server, topic: str, messages: list[dict], **settings) -> urllib3.BaseHTTPResponse:
    body = "\n".join(json.dumps(message) for message in messages).encode()
    return HTTP.request("POST", f"{server.url}/?{urlencode({'query': insert_statement(topic), **settings})}", body=body)


def deliver(server, messages: dict[str, list[dict]], batch_size: int = 200, **settings) -> None:
    """Every topic's messages in batches; jobs and logs may arrive before their workflows."""
    for topic in ("jobs", "job_logs", "workflows", "analytics", "telemetry"):
        batch = messages.get(topic, [])
        for start in range(0, len(batch), batch_size):
            response = post_batch(server, topic, batch[start : start + batch_size], **settings)
            assert response.status == 200, response.data.decode()


def query(server, sql: str) -> list[dict]:
    response = HTTP.request("POST", server.url + "/", body=f"{sql} FORMAT JSONEachRow".encode())
    assert response.status == 200, response.data.decode()
    return [json.loads(line) for line in response.data.splitlines()]


def execute(server, sql: str) -> None:
    response = HTTP.request("POST", server.url + "/", body=sql.encode())
    assert response.status == 200, response.data.decode()


def user_percentiles(server, user: str) -> list[float]:
    """A user's duration percentiles over all time (p50, p90, p95, p99), as ClickHouse merges its digests."""
    [row] = query(
        server,
        "SELECT quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(duration_seconds_quantiles) AS p"
        f" FROM analytics.job_duration_daily WHERE user_id = '{user}'",
    )
    return row["p"]


@contextlib.contextmanager
def copied_rows(server, table: str, condition: str) -> Iterator[str]:
    """A copy of the rows of ``analytics.<table>`` matching ``condition``, in a scratch database
    dropped at the end: yields the copy's qualified name, to insert the rows back from."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    execute(server, f"CREATE DATABASE {database}")
    try:
        execute(server, f"CREATE TABLE {database}.{table} AS analytics.{table}")
        execute(server, f"INSERT INTO {database}.{table} SELECT * FROM analytics.{table} WHERE {condition}")
        yield f"{database}.{table}"
    finally:
        execute(server, f"DROP DATABASE IF EXISTS {database} SYNC")
