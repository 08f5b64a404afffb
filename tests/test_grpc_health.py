"""The health service (server/health.py) over a real channel to an in-process gRPC server: Check,
Watch streams told each change and ended at shutdown, and no deadlock between a status change and
a watch that closes (grpcio-health-checking's servicer sent under the lock that gRPC's completion
thread needs to close a watch: the server stopped answering anything, its shutdown hung)."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.health import HealthService

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


@pytest.fixture
def served():
    health = HealthService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield health, health_pb2_grpc.HealthStub(channel)
    finally:
        channel.close()
        server.stop(None)


def watch(stub, service: str = ""):
    return stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=30)


def test_check_answers_each_status_and_not_found_for_an_unknown_service(served):
    health, stub = served
    assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == SERVING
    health.set("analytics.AnalyticsService", NOT_SERVING)
    assert stub.Check(health_pb2.HealthCheckRequest(service="analytics.AnalyticsService"), timeout=10).status == (
        NOT_SERVING
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(health_pb2.HealthCheckRequest(service="nothing.Here"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_watch_is_told_each_change_in_order_and_ends_at_shutdown(served):
    health, stub = served
    known, unknown = watch(stub), watch(stub, "later.Service")
    assert next(known).status == SERVING and next(unknown).status == UNKNOWN
    health.set("", SERVING)  # no change: nothing said
    health.set("", NOT_SERVING)
    health.set("", SERVING)
    health.set("later.Service", SERVING)
    assert [next(known).status, next(known).status] == [NOT_SERVING, SERVING]
    assert next(unknown).status == SERVING
    health.enter_graceful_shutdown()
    assert [response.status for response in known] == [NOT_SERVING]  # and then the stream ends, OK
    assert [response.status for response in unknown] == [NOT_SERVING]
    health.set("", SERVING)  # after shutdown's NOT_SERVING, nothing changes any more
    assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == NOT_SERVING
    assert [response.status for response in watch(stub)] == [NOT_SERVING]  # a new watch: told, and ended


@pytest.mark.parametrize("ending", ["status changes", "a shutdown"])
def test_watches_closing_while_the_status_changes_leave_the_server_answering(served, ending):
    health, stub = served
    changes = [0]
    stop = threading.Event()

    def change() -> None:
        while not stop.is_set():
            health.set("", SERVING if changes[0] % 2 else NOT_SERVING)
            changes[0] += 1
            time.sleep(0.002)

    changer = threading.Thread(target=change, daemon=True)
    changer.start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            watches = [watch(stub) for _ in range(20)]
            for open_watch in watches:
                next(open_watch)
            for open_watch in watches:
                open_watch.cancel()
            before = changes[0]
            stalled_since = time.monotonic()
            while changes[0] == before:  # a set() that never returns: the deadlock
                assert time.monotonic() - stalled_since < 10, "a status change hung while watches closed"
                time.sleep(0.01)
        if ending == "a shutdown":
            watches = [watch(stub) for _ in range(20)]
            for open_watch in watches:
                next(open_watch)
            closing = threading.Thread(target=lambda: [w.cancel() for w in watches])
            closing.start()
            done = threading.Thread(target=health.enter_graceful_shutdown, daemon=True)
            done.start()
            done.join(10)
            assert not done.is_alive(), "the shutdown's NOT_SERVING hung while watches closed"
            closing.join(10)
        # The server still completes calls (its completion thread was the one held).
        assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status in (SERVING, NOT_SERVING)
    finally:
        stop.set()
        changer.join(10)
