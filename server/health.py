"""The standard health service, whose Watch streams end once they have said NOT_SERVING at shutdown.

grpcio's HealthServicer keeps a Watch stream open after its NOT_SERVING: an open watch (Kubernetes'
gRPC probes, Envoy, grpc-go's health checking) held every shutdown for the whole drain
(ANALYTICS_GRPC_DRAIN_SECONDS), where calls and log tails let it go at once.
"""

from __future__ import annotations

from grpc_health.v1 import health


class HealthService(health.HealthServicer):
    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING, for good; each Watch stream is told so, then ends (OK)."""
        super().enter_graceful_shutdown()
        with self._lock:
            watchers = [send for sends in self._send_response_callbacks.values() for send in sends]
        for send in watchers:
            send(None)  # the end of the stream, after the NOT_SERVING sent above
