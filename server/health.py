"""The standard health service, and the watch that turns it NOT_SERVING while ClickHouse cannot be
reached.

Written here rather than taken from grpcio-health-checking, whose HealthServicer has two faults:

- It sends a Watch stream's updates while holding the lock that the stream's close needs, and
  gRPC runs that close on the thread that completes every call's sends. A status change (ClickHouse
  going out of reach, a shutdown) while a watch closed deadlocked the two: no call of the server
  finished again, and a shutdown waited for ever (`tests/test_grpc_health.py`).
- It keeps a Watch stream open after its NOT_SERVING: an open watch (Kubernetes' gRPC probes,
  Envoy, grpc-go's health checking) held every shutdown for the whole drain
  (ANALYTICS_GRPC_DRAIN_SECONDS), where calls and log tails let it go at once.

Here the statuses and the open watches are guarded by one lock, never held while sending; each
watch sends under a lock of its own, and always its service's newest status, so a watch sees the
changes in order and ends on the last one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.backend import QueryBackend, QueryFailed, StoreUnreachable

log = logging.getLogger(__name__)

# The longest a reachability check waits for ClickHouse's answer.
PROBE_TIMEOUT = 2.0

Status = int  # a HealthCheckResponse.ServingStatus
Send = Callable[[health_pb2.HealthCheckResponse | None], object]  # gRPC's: None ends the stream


class _Watch:
    """One Watch stream: what it should say next (`latest`, set under the service's lock) and what
    it last said; sending happens under this stream's own lock only."""

    def __init__(self, send: Send, latest: Status):
        self._send = send
        self._lock = threading.Lock()
        self.latest = latest
        self._said: Status | None = None
        self._ended = False

    def say_latest(self) -> None:
        with self._lock:
            if not self._ended and self.latest != self._said:
                self._said = self.latest
                self._send(health_pb2.HealthCheckResponse(status=self._said))

    def end(self) -> None:
        """End the stream (OK), after what it was told."""
        with self._lock:
            if not self._ended:
                self._ended = True
                self._send(None)

    def closed(self) -> None:
        """The client went away: send nothing more. Runs on gRPC's completion thread, which must
        not wait for a send in progress (that send waits for this thread)."""
        self._ended = True
        self._send(None)


class HealthService(health_pb2_grpc.HealthServicer):
    """grpc.health.v1.Health: Check and Watch, `set` a service's status, `enter_graceful_shutdown`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # never held while sending
        self._status: dict[str, Status] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._watches: dict[str, set[_Watch]] = {}
        self._shutting_down = False

    def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext):  # noqa: N802
        with self._lock:
            status = self._status.get(request.service)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext, send_response_callback: Send
    ):  # noqa: N802
        service = request.service
        with self._lock:
            status = self._status.get(service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
            watch = _Watch(send_response_callback, status)
            self._watches.setdefault(service, set()).add(watch)
            ended = self._shutting_down
        context.add_callback(lambda: self._closed(service, watch))
        watch.say_latest()
        if ended:
            watch.end()

    # A stream of messages sent through the callback, holding no thread of the server between them.
    Watch.experimental_non_blocking = True  # type: ignore[attr-defined]
    Watch.experimental_thread_pool = None  # type: ignore[attr-defined]

    def _closed(self, service: str, watch: _Watch) -> None:
        with self._lock:
            self._watches.get(service, set()).discard(watch)
        watch.closed()

    def set(self, service: str, status: Status) -> None:
        """The status of ``service``, told to its watches; nothing once shutdown has begun."""
        with self._lock:
            if self._shutting_down:
                return
            self._status[service] = status
            watches = list(self._watches.get(service, ()))
            for watch in watches:
                watch.latest = status
        for watch in watches:
            watch.say_latest()

    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING, for good; each Watch stream is told so, then ends (OK)."""
        with self._lock:
            if self._shutting_down:
                return
            self._shutting_down = True
            for service in self._status:
                self._status[service] = health_pb2.HealthCheckResponse.NOT_SERVING
            watches = [watch for service in self._watches.values() for watch in service]
            for service, service_watches in self._watches.items():
                if service in self._status:
                    for watch in service_watches:
                        watch.latest = health_pb2.HealthCheckResponse.NOT_SERVING
        for watch in watches:
            watch.say_latest()
            watch.end()


class StoreWatch:
    """Health follows ClickHouse: NOT_SERVING while it cannot be reached, SERVING again once it can.

    Every ``interval`` seconds a thread asks the backend whether ClickHouse answers (its /ping,
    which runs no query); each change is logged once. A slow answer changes nothing: a busy
    ClickHouse still answers calls, later. Shutdown's NOT_SERVING is final whatever this finds.
    """

    def __init__(self, health: HealthService, backend: QueryBackend, services: tuple[str, ...], interval: float):
        self.health = health
        self.backend = backend
        self.services = services
        self.interval = interval
        self.reachable: bool | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grpc-health-watch", daemon=True)

    def check(self) -> None:
        """Ask once and set every service's status from the answer."""
        try:
            self.backend.reachable(min(self.interval, PROBE_TIMEOUT))
        except StoreUnreachable as error:
            self._set(False, str(error))
        except QueryFailed:  # slow, busy or refusing this one: reachable all the same
            if self.reachable is None:
                self._set(True, "")
        else:
            self._set(True, "")

    def _set(self, reachable: bool, reason: str) -> None:
        if reachable == self.reachable:
            return
        if reachable and self.reachable is not None:
            log.warning("ClickHouse answers again: health SERVING")
        elif not reachable:
            log.warning("ClickHouse cannot be reached (%s): health NOT_SERVING until it can", reason)
        self.reachable = reachable
        status = health_pb2.HealthCheckResponse.SERVING if reachable else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in self.services:
            self.health.set(service, status)  # a no-op once shutdown has begun

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
