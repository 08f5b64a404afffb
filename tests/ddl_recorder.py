"""An HTTP front that records every statement dbt-clickhouse sends to what it takes for a cluster,
and lets a single node run them: the DDL a ClickHouse cluster would receive, produced by
dbt-clickhouse itself, without a cluster.

The statements are recorded exactly as sent; what goes on to the embedded ClickHouse has ON CLUSTER
dropped, Replicated engines made plain, and Distributed and Kafka engines made Null (chDB has no
cluster and no Kafka engine), so dbt's own checks of what it created still find the tables.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import urllib3

from tests.embedded_server import free_port

ON_CLUSTER = re.compile(r"(?i)\s+on\s+cluster\s+(\"[^\"]+\"|`[^`]+`|'[^']+'|\w+)")
REPLICATED = re.compile(r"\bReplicated(\w*MergeTree)\b")
NESTED_ARGS = r"\((?:[^()']|'[^']*'|\([^()]*\))*\)"
DISTRIBUTED = re.compile(r"\bDistributed" + NESTED_ARGS)
KAFKA = re.compile(r"\bKafka\(\)")
VIEW_QUERY_WITH = re.compile(r"(?is)(create\s+materialized\s+view\b.*?\bas\s*(?:--[^\n]*\n\s*)*\(?\s*)with\b")
KAFKA_VIRTUAL_COLUMNS = (
    "'' as _topic, toUInt64(0) as _partition, toUInt64(0) as _offset,"
    " cast(null as Nullable(DateTime64(3, 'UTC'))) as _timestamp_ms"
)
# dbt-clickhouse reads what exists from every replica: clusterAllReplicas("c", system.tables).
CLUSTER_TABLE = re.compile(r"\b(?:clusterAllReplicas|cluster)\(\s*'[^']+'\s*,\s*'([^']+)'\s*,\s*'([^']+)'\s*\)")
ON_SHARDS = re.compile(r"(?i)count\(\s*distinct\s+_shard_num\s*\)\s*>\s*1")
ALL_REPLICAS = re.compile(r"\b(?:clusterAllReplicas|cluster)\(\s*(\"[^\"]+\"|'[^']+'|\w+)\s*,\s*(system\.\w+)\s*\)")
KAFKA_SETTINGS = re.compile(r"(?is)\bsettings\s+kafka_\w+\s*=.*?(?=\)?\s*(?:\bas\b|$|\n\s*\n))")


def single_node(sql: str) -> str:
    """The statement as one node without a cluster or Kafka engine can run it."""
    sql = ON_CLUSTER.sub("", sql)
    sql = ALL_REPLICAS.sub(r"\2", sql)
    sql = CLUSTER_TABLE.sub(r"`\1`.`\2`", sql)
    sql = ON_SHARDS.sub("1", sql)  # what exists was created ON CLUSTER, so it is on every shard
    sql = REPLICATED.sub(r"\1", sql)
    sql = DISTRIBUTED.sub("Null", sql)
    if KAFKA.search(sql):
        sql = KAFKA_SETTINGS.sub("", KAFKA.sub("Null", sql))
    if "_messages`" in sql:
        # A view reading a Kafka table reads its virtual columns, which the Null stand-in lacks.
        sql = VIEW_QUERY_WITH.sub(r"\1with " + KAFKA_VIRTUAL_COLUMNS + ",", sql, count=1)
    return sql


class DdlRecorder:
    """Forwards 127.0.0.1:``port`` to ClickHouse at ``upstream``; ``statements`` as received."""

    def __init__(self, upstream: str):
        self.statements: list[str] = []
        self.port = free_port()
        pool = urllib3.PoolManager(retries=False)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                self._forward()

            def do_GET(self) -> None:
                self._forward()

            def _forward(self) -> None:
                parts = urlsplit(self.path)
                params = parse_qsl(parts.query, keep_blank_values=True)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                in_params = [value for name, value in params if name == "query"]
                encoded = self.headers.get("Content-Encoding")
                if in_params:
                    recorder.statements.append(in_params[0])
                    params = [(n, single_node(v) if n == "query" else v) for n, v in params]
                elif body and not encoded:
                    recorder.statements.append(body.decode())
                    body = single_node(body.decode()).encode()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                response = pool.request(
                    self.command,
                    upstream.rstrip("/") + parts.path + "?" + urlencode(params),
                    body=body or None,
                    headers=headers,
                    preload_content=True,
                    decode_content=False,
                )
                self.send_response(response.status)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.data)))
                self.end_headers()
                self.wfile.write(response.data)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
