"""Run `analytics grpc` (or `analytics up`) as a process and talk to it over real gRPC channels."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from analytics_proto import analytics_pb2_grpc as pb_grpc
from tests.embedded_server import free_port, stop_process, stopped_at_exit

REPO = Path(__file__).resolve().parent.parent
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class ServiceProcess:
    """A running `analytics grpc` or `analytics up`."""

    process: subprocess.Popen
    port: int
    log_path: Path
    credentials: grpc.ChannelCredentials | None = None
    extra: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self, credentials: grpc.ChannelCredentials | None = None, options: list | None = None) -> grpc.Channel:
        credentials = credentials or self.credentials
        options = list(options or [])
        if credentials is None:
            return grpc.insecure_channel(self.target, options=options)
        # The test certificates name "localhost".
        options.append(("grpc.ssl_target_name_override", "localhost"))
        return grpc.secure_channel(self.target, credentials, options=options)

    def stub(self, channel: grpc.Channel | None = None) -> pb_grpc.AnalyticsServiceStub:
        return pb_grpc.AnalyticsServiceStub(channel or self.channel())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        return stop_process(self.process, sig, timeout)


def launch(command: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
    log_file = open(log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
    process = subprocess.Popen(
        [sys.executable, "-m", "analytics.cli", *command],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )
    return stopped_at_exit(process)


def start_grpc(
    log_dir: Path,
    *args: str,
    env: dict | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    wait: bool = True,
) -> ServiceProcess:
    """`analytics grpc --port <free> ARGS` and wait until its health check answers SERVING."""
    port = free_port()
    log_path = log_dir / f"grpc.{port}.log"
    process = launch(["grpc", "--port", str(port), *args], log_path, env)
    service = ServiceProcess(process, port, log_path, credentials)
    if wait:
        wait_until_serving(service)
    return service


def start_up(data_dir: Path, env: dict | None = None) -> ServiceProcess:
    """`analytics up` on free ports; it builds the schema before the gRPC service starts."""
    http_port, grpc_port = free_port(), free_port()
    log_path = data_dir.with_name(data_dir.name + ".up.log")
    process = launch(
        ["up", "--no-dagster"],
        log_path,
        {
            "ANALYTICS_DATA_DIR": str(data_dir),
            "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(http_port),
            "ANALYTICS_GRPC_PORT": str(grpc_port),
            **(env or {}),
        },
    )
    service = ServiceProcess(process, grpc_port, log_path, extra={"url": f"http://127.0.0.1:{http_port}"})
    wait_until_serving(service, timeout=240)
    return service


def health_status(channel: grpc.Channel, service: str = "") -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


# A channel that cannot connect waits out gRPC's reconnect backoff (1 s growing 1.6x, up to 120 s)
# before it tries again: a probe of a server that took 20 s to start would see it only ~10 s late.
PROBE_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 250),
]


def wait_until_serving(service: ServiceProcess, timeout: float = 60.0, status: int | None = SERVING) -> int:
    """Wait until the health check answers ``status`` (None: any status) and return it."""
    deadline = time.monotonic() + timeout
    with service.channel(options=PROBE_OPTIONS) as channel:
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise RuntimeError(f"the service exited with {service.process.returncode}:\n{service.log()}")
            try:
                answer = health_status(channel)
                if status is None or answer == status:
                    return answer
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    service.stop(signal.SIGKILL)
    wanted = "answer its health check" if status is None else f"report health {status}"
    raise RuntimeError(f"the service did not {wanted} within {timeout}s:\n{service.log()}")


def wait_for_exit(service: ServiceProcess, timeout: float = 30.0) -> str:
    """The output of a process expected to stop by itself (e.g. refusing its settings)."""
    service.process.wait(timeout)
    return service.log()


def call_by_reflection(target: str, method: str, body: str, metadata=()) -> dict:
    """What `grpcurl -plaintext -d BODY TARGET METHOD` does, without any generated code.

    The server's reflection gives the file descriptors; the request is built from JSON and
    the response printed as JSON (64-bit integers as strings, as grpcurl prints them).
    """
    service_name, method_name = method.split("/")
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        descriptor = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        response_class = message_factory.GetMessageClass(descriptor.output_type)
        call = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = call(json_format.Parse(body, request_class()), timeout=30, metadata=metadata)
        return json.loads(json_format.MessageToJson(response, preserving_proto_field_name=True))


def listed_services(target: str) -> list[str]:
    """What `grpcurl -plaintext TARGET list` prints."""
    with grpc.insecure_channel(target) as channel:
        return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


class HeldRelay:
    """A TCP relay to a real server that can hold what clients send.

    It lets a test keep a query in flight for as long as it needs (a real ClickHouse answers
    once released) without any timing: `hold()`, wait for `request_seen`, act, `release()`.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.request_seen = threading.Event()
        self.held = self.most_held = 0  # requests held now, and at most at once
        self._count = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._drops = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self) -> None:
        self.request_seen.clear()
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def drop_next(self, requests: int = 1) -> None:
        """Close the connection of the next ``requests`` requests instead of passing them on."""
        self._drops = requests

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            except OSError:
                client.close()  # the client sees the connection end, as with the server itself; keep accepting
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                # The service's health checks (GET /ping) go through: only queries are held or dropped.
                if from_client and not data.startswith(b"GET /ping"):
                    self.request_seen.set()
                    self._wait_while_held()
                    if self._drops:
                        self._drops -= 1
                        return  # the finally below closes both ends
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def _wait_while_held(self) -> None:
        if self._open.is_set():
            return
        with self._count:
            self.held += 1
            self.most_held = max(self.most_held, self.held)
        self._open.wait()
        with self._count:
            self.held -= 1

    def close(self) -> None:
        """Release what is held and end every connection at once, both sides.

        A socket another thread is blocked in (a pump's recv, the accept) is only closed for good
        once that call returns: shutdown ends the call and sends the FIN, where close alone would
        leave the server a request it keeps waiting on for the rest of the run.
        """
        self._open.set()
        for end in (self.listener, *self._sockets):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


class Gateway:
    """An HTTP reverse proxy in front of ClickHouse, as a load balancer is (nginx, Envoy, HAProxy):
    each request is passed to ``upstream_port``, and answered 502 Bad Gateway when nothing listens
    there. ``upstream_port`` may be changed while it runs."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._pass()

            def do_POST(self) -> None:  # noqa: N802
                self._pass()

            def _pass(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection("127.0.0.1", gateway.upstream_port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
                    answer = upstream.getresponse()
                    status, headers, data = answer.status, answer.getheaders(), answer.read()
                except ConnectionRefusedError:
                    status, headers, data = 502, [("Content-Type", "text/html")], b"<h1>502 Bad Gateway</h1>\n"
                finally:
                    upstream.close()
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- Prometheus metrics ------------------------------------------------------------------------


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels) -> float:
    """One sample of the Prometheus text format: 0 when the metric has no sample with these labels
    yet; a metric the scrape does not declare at all (renamed, or never registered) fails."""
    family = re.sub(r"_(count|sum|bucket|created)$", "", name)
    if not re.search(rf"^# TYPE ({re.escape(name)}|{re.escape(family)}) ", text, re.MULTILINE):
        raise AssertionError(f"the scrape declares no metric {name}")
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{key}="{value}"' in (match.group(1) or "") for key, value in labels.items()):
            return float(match.group(2))
    return 0.0


def wait_until(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
