"""Overload shows as codes a client can act on: ordinary calls run at most ANALYTICS_GRPC_WORKERS at
once (the log tails' threads are theirs alone), a burst beyond what the service takes is
RESOURCE_EXHAUSTED, never CANCELLED, and a ClickHouse that refuses a query as one too many at once is
RESOURCE_EXHAUSTED, not INTERNAL."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from concurrent import futures

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from analytics_proto import analytics_pb2_grpc
from server.interceptors import WorkerLimit
from tests import embedded_server
from tests.grpc_operations_support import logs, rpc_error, small  # noqa: F401 - fixtures
from tests.grpc_server import SERVING, HeldRelay, health_status, start_grpc
from tests.http_support import post

SLOW = 0.3  # seconds each call of the servicer below takes


class Slow(analytics_pb2_grpc.AnalyticsServiceServicer):
    """Answers after SLOW seconds, counting how many of its calls run at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = self.most = 0

    def GetUserAnalytics(self, request, context):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(SLOW)
        with self.lock:
            self.running -= 1
        return pb.GetUserAnalyticsResponse(total_workflows=1)


def test_ordinary_calls_run_at_most_the_workers_at_once_however_many_threads_wait():
    servicer = Slow()
    # A pool as the service sizes it: the workers and the tails' threads.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=12), interceptors=[WorkerLimit(2)])
    analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
            calls = [
                stub.GetUserAnalytics.future(pb.GetUserAnalyticsRequest(user_id="u"), timeout=30) for _ in range(8)
            ]
            assert [call.result().total_workflows for call in calls] == [1] * 8
            # A call that cannot get a worker before its deadline says so.
            waiting = [
                stub.GetUserAnalytics.future(pb.GetUserAnalyticsRequest(user_id="u"), timeout=30) for _ in range(4)
            ]
            late = rpc_error(stub.GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id="u"), timeout=SLOW / 3)
            assert late.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert [call.result().total_workflows for call in waiting] == [1] * 4
    finally:
        server.stop(None)
    assert servicer.most == 2


@pytest.fixture
def one_query_at_a_time(tmp_path):
    """An embedded ClickHouse that runs one query at a time, busy with one that runs long."""
    server = embedded_server.start(tmp_path / "busy", env={"ANALYTICS_CLICKHOUSE_MAX_CONCURRENT_QUERIES": "1"})
    long = threading.Thread(
        target=post, args=(server, b"SELECT count() FROM numbers(100000000000) SETTINGS max_execution_time = 20")
    )
    long.start()
    time.sleep(1)
    try:
        yield server
    finally:
        post(server, b"KILL QUERY WHERE query LIKE '%numbers(100000000000)%' AND query NOT LIKE '%KILL%' SYNC")
        long.join(30)
        server.stop()


def test_a_query_clickhouse_refuses_as_one_too_many_is_resource_exhausted(logs, one_query_at_a_time):  # noqa: F811
    service = start_grpc(logs, "--clickhouse-url", one_query_at_a_time.url)
    try:
        with service.channel() as channel:
            error = rpc_error(
                service.stub(channel).GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id="u-1"), timeout=30
            )
        assert (error.code(), error.details()) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "the analytics store is taking too many queries; call again",
        )
        assert "TOO_MANY_SIMULTANEOUS_QUERIES" in service.log() or "Too many simultaneous queries" in service.log()
    finally:
        assert service.stop() == 0


BURST = 3000  # calls sent at once on one channel: beyond the 1,000 gRPC's core lets wait by default


async def burst(target: str, user: str, calls: int = BURST) -> collections.Counter:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)

        async def call() -> grpc.StatusCode:
            try:
                await stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=120)
            except grpc.aio.AioRpcError as error:
                return error.code()
            return grpc.StatusCode.OK

        return collections.Counter(await asyncio.gather(*(call() for _ in range(calls))))


def test_a_burst_beyond_what_the_service_takes_is_refused_as_resource_exhausted_never_cancelled(logs, analytics_db):  # noqa: F811
    """gRPC's core cancelled the calls waiting to be taken up beyond 1,000 (at random up to 3,000):
    a client saw CANCELLED, as if it had cancelled them itself, for calls it had not, before the
    service's admission control could answer them or refuse them with RESOURCE_EXHAUSTED."""
    service = start_grpc(logs, "--clickhouse-url", analytics_db.url)
    try:
        codes = asyncio.run(burst(service.target, "u-burst"))
        assert set(codes) <= {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
        assert codes[grpc.StatusCode.NOT_FOUND] > 0, codes
        # The burst leaves nothing behind.
        with service.channel() as channel:
            error = rpc_error(service.stub(channel).GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id="u-burst"))
        assert error.code() == grpc.StatusCode.NOT_FOUND
    finally:
        assert service.stop() == 0, service.log()


def test_a_burst_the_service_answers_within_its_deadlines_is_answered_whole(logs, analytics_db):  # noqa: F811
    """1,000 calls at once, which the service answers in a second or two: with 64 calls allowed to
    wait beyond the threads, about 650 of them were refused (RESOURCE_EXHAUSTED), and a client
    written as the documentation's stops at its first error."""
    service = start_grpc(logs, "--clickhouse-url", analytics_db.url)
    try:
        codes = asyncio.run(burst(service.target, "u-burst", 1000))
        assert codes == {grpc.StatusCode.NOT_FOUND: 1000}, codes
    finally:
        assert service.stop() == 0, service.log()


def test_a_health_check_is_answered_at_once_while_calls_wait_for_a_worker(logs, analytics_db, small):  # noqa: F811
    """Health checks (Kubernetes' probes, load balancers) have threads of their own: a Check waited
    behind the calls queued for a worker, past a probe's timeout, and a busy server was called dead."""
    relay = HeldRelay(analytics_db.port)
    # One worker, one tail thread: two threads, both taken below, and three calls queued behind them.
    service = start_grpc(
        logs,
        "--clickhouse-url",
        relay.url,
        "--workers",
        "1",
        "--max-queued-calls",
        "10",
        env={"ANALYTICS_GRPC_MAX_LOG_TAILS": "1"},
    )
    user = small.expected.users[0]
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            relay.hold()
            request = pb.GetUserAnalyticsRequest(user_id=user)
            calls = [stub.GetUserAnalytics.future(request, timeout=120) for _ in range(5)]
            assert relay.request_seen.wait(30)
            assert health_status(channel) == SERVING  # 5 s, where it waited for the calls held
            assert health_status(channel, "analytics.AnalyticsService") == SERVING
            relay.release()
            assert [call.result(timeout=60).total_jobs for call in calls] == [small.expected.user(user)[1]] * 5
    finally:
        relay.close()
        assert service.stop() == 0, service.log()
