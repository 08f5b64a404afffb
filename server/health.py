"""The standard health service, whose Watch streams end once they have said NOT_SERVING at shutdown,
and the watch that turns it NOT_SERVING while ClickHouse cannot be reached.

grpcio's HealthServicer keeps a Watch stream open after its NOT_SERVING: an open watch (Kubernetes'
gRPC probes, Envoy, grpc-go's health checking) held every shutdown for the whole drain
(ANALYTICS_GRPC_DRAIN_SECONDS), where calls and log tails let it go at once.
"""

from __future__ import annotations

import logging
import threading

from grpc_health.v1 import health, health_pb2

from core.backend import QueryBackend, QueryFailed, StoreUnreachable

log = logging.getLogger(__name__)

# The longest a reachability check waits for ClickHouse's answer.
PROBE_TIMEOUT = 2.0


class HealthService(health.HealthServicer):
    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING, for good; each Watch stream is told so, then ends (OK)."""
        super().enter_graceful_shutdown()
        with self._lock:
            watchers = [send for sends in self._send_response_callbacks.values() for send in sends]
        for send in watchers:
            send(None)  # the end of the stream, after the NOT_SERVING sent above


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
