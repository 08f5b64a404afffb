"""Running the gRPC service: refusing to start, ClickHouse failing, deadlines, drain and stopping."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from analytics_proto import analytics_pb2 as pb
from tests import embedded_server
from tests.embedded_server import free_port
from tests.grpc_operations_support import logs, rpc_error, small, user_totals  # noqa: F401 - fixtures
from tests.grpc_server import (
    NOT_SERVING,
    SERVING,
    Gateway,
    HeldRelay,
    start_grpc,
    wait_for_exit,
    wait_until_serving,
)

# -- refusing to start --------------------------------------------------------------------------


def refused(logs: Path, *args: str, env: dict | None = None) -> str:
    service = start_grpc(logs, *args, env=env, wait=False)
    output = wait_for_exit(service)
    assert service.process.returncode != 0, output
    return output


def test_a_port_in_use_is_refused(logs):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        output = refused(logs, "--port", str(port))
    assert f"cannot listen on 127.0.0.1:{port}" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "/nonexistent/server.pem", "--tls-key", "/nonexistent/server.key"], "cannot read the TLS"),
        (["--tls-cert", "/nonexistent/server.pem"], "ANALYTICS_GRPC_TLS_CERT and ANALYTICS_GRPC_TLS_KEY"),
        # Read, but not PEM: gRPC's core logged it, and the start failed as if the port were taken.
        (["--tls-cert", "/etc/hostname", "--tls-key", "/etc/hostname"], "are not a PEM certificate chain and its"),
        (["--tls-client-ca", "/nonexistent/ca.pem"], "ANALYTICS_GRPC_TLS_CLIENT_CA (mutual TLS) needs"),
        (["--clickhouse-url", "clickhouse:8123"], "is not http(s)://HOST[:PORT]"),
        (["--id-format", "numbers"], "Invalid value for '--id-format'"),
        (["--tokens-file", "/nonexistent/tokens"], "cannot read the tokens file /nonexistent/tokens"),
    ],
    ids=[
        "unreadable-tls",
        "cert-without-key",
        "tls-not-pem",
        "client-ca-without-cert",
        "bad-url",
        "id-format",
        "tokens-file",
    ],
)
def test_bad_settings_are_refused_with_the_reason(logs, args, message):
    assert message in refused(logs, *args)


def test_a_malformed_tokens_file_names_its_line(logs):
    path = logs / "bad-tokens"
    path.write_text("a-good-token-0123456789 user-1\nno-user-for-this-token\n")
    assert f"{path} line 2: expected 'TOKEN USER_ID'" in refused(logs, "--tokens-file", str(path))


# -- ClickHouse failing, deadlines and drain ----------------------------------------------------


def test_clickhouse_failures_say_whether_to_call_again_and_leak_no_sql(logs, analytics_db, refused_port):
    # ClickHouse out of reach (down, restarting) is UNAVAILABLE, the code a client retries; one
    # that refuses the query is INTERNAL.
    nothing_there = start_grpc(logs, "--clickhouse-url", f"http://127.0.0.1:{refused_port}", wait=False)
    assert wait_until_serving(nothing_there, status=None) == NOT_SERVING  # health says so too
    wrong_user = start_grpc(logs, "--clickhouse-url", analytics_db.url, env={"ANALYTICS_CLICKHOUSE_USER": "intruder"})
    expected = [
        (nothing_there, grpc.StatusCode.UNAVAILABLE, "the analytics store cannot be reached now; call again"),
        (wrong_user, grpc.StatusCode.INTERNAL, "the analytics store could not answer; see the server log"),
    ]
    try:
        for service, code, details in expected:
            with service.channel() as channel:
                error = rpc_error(
                    service.stub(channel).GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id="user-123"), timeout=30
                )
            assert (error.code(), error.details()) == (code, details)
        assert "is unreachable" in nothing_there.log()
        assert "AUTHENTICATION_FAILED" in wrong_user.log() or "403" in wrong_user.log()
    finally:
        assert nothing_there.stop() == 0
        assert wrong_user.stop() == 0


def test_a_gateway_in_front_of_a_clickhouse_out_of_reach_is_unavailable(logs, analytics_db, refused_port, small):
    """ClickHouse behind a load balancer: when nothing answers behind it, the balancer answers
    502 Bad Gateway (or 503, 504), which was INTERNAL, while health already said NOT_SERVING."""
    gateway = Gateway(analytics_db.port)
    service = start_grpc(logs, "--clickhouse-url", gateway.url, env={"ANALYTICS_GRPC_HEALTH_CHECK_INTERVAL": "0"})
    user = small.expected.users[0]
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            assert user_totals(stub, user) == small.expected.user(user)
            gateway.upstream_port = refused_port
            error = rpc_error(stub.GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=user), timeout=30)
            assert (error.code(), error.details()) == (
                grpc.StatusCode.UNAVAILABLE,
                "the analytics store cannot be reached now; call again",
            )
            gateway.upstream_port = analytics_db.port
            assert user_totals(stub, user) == small.expected.user(user)
        assert "HTTP 502" in service.log()
    finally:
        gateway.close()
        assert service.stop() == 0


def test_a_query_outliving_the_servers_deadline_is_deadline_exceeded(logs, analytics_db, small):
    relay = HeldRelay(analytics_db.port)
    service = start_grpc(logs, "--clickhouse-url", relay.url, env={"ANALYTICS_GRPC_DEFAULT_DEADLINE": "0.5"})
    try:
        relay.hold()
        with service.channel() as channel:
            # the client sets no deadline: the server's own one ends the call
            error = rpc_error(
                service.stub(channel).GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=small.expected.users[0])
            )
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert error.details() == "the analytics query did not finish before the deadline"
    finally:
        relay.close()
        assert service.stop() == 0


def test_a_clients_own_deadline_longer_than_the_servers_default_is_kept(logs, analytics_db, small):
    """ANALYTICS_GRPC_DEFAULT_DEADLINE is for calls without a deadline: a client that gave its call
    more time (a heavy listing, a long series) had it cut to the default, DEADLINE_EXCEEDED."""
    relay = HeldRelay(analytics_db.port)
    service = start_grpc(logs, "--clickhouse-url", relay.url, env={"ANALYTICS_GRPC_DEFAULT_DEADLINE": "0.5"})
    user = small.expected.users[0]
    try:
        with service.channel() as channel:
            relay.hold()
            call = service.stub(channel).GetUserAnalytics.future(pb.GetUserAnalyticsRequest(user_id=user), timeout=60)
            assert relay.request_seen.wait(30)
            # ClickHouse answers well after the server's default (and its socket's second beyond it).
            time.sleep(4)
            relay.release()
            answer = call.result(timeout=60)
        assert answer.total_jobs == small.expected.user(user)[1]
    finally:
        relay.close()
        assert service.stop() == 0


def test_sigterm_reports_not_serving_finishes_calls_in_flight_then_exits(logs, analytics_db, small):
    relay = HeldRelay(analytics_db.port)
    service = start_grpc(logs, "--clickhouse-url", relay.url)
    user = small.expected.users[2]
    try:
        with service.channel() as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
            assert next(watch).status == SERVING
            relay.hold()
            in_flight = service.stub(channel).GetUserAnalytics.future(
                pb.GetUserAnalyticsRequest(user_id=user), timeout=60
            )
            assert relay.request_seen.wait(30)  # the query is at ClickHouse's door
            service.process.send_signal(signal.SIGTERM)
            assert next(watch).status == NOT_SERVING
            watch.cancel()
            relay.release()
            answer = in_flight.result()
        assert (answer.total_workflows, answer.total_jobs) == small.expected.user(user)[:2]
        assert service.process.wait(60) == 0
        output = service.log()
        assert "draining" in output and "stopped" in output
    finally:
        relay.close()
        service.stop(signal.SIGKILL)


def test_a_health_watch_is_told_not_serving_and_ended_without_holding_the_drain(logs, analytics_db):
    # Kubernetes' gRPC probes, Envoy and grpc-go's health checking keep a Watch open; it held every
    # shutdown for the whole drain. With a drain of two minutes, the process must end well before.
    service = start_grpc(logs, "--clickhouse-url", analytics_db.url, env={"ANALYTICS_GRPC_DRAIN_SECONDS": "120"})
    try:
        with service.channel() as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=90)
            assert next(watch).status == SERVING
            service.process.send_signal(signal.SIGTERM)
            assert [answer.status for answer in watch] == [NOT_SERVING]  # then the stream ends (OK)
        assert service.process.wait(60) == 0
    finally:
        service.stop(signal.SIGKILL)


def test_ctrl_c_stops_as_sigterm_does(logs, analytics_db):
    service = start_grpc(logs, "--clickhouse-url", analytics_db.url)
    assert service.stop(signal.SIGINT) == 0
    assert "gRPC AnalyticsService stopped" in service.log()


def test_health_is_not_serving_while_clickhouse_cannot_be_reached(logs, tmp_path):
    """From the start, and again whenever ClickHouse goes away; a Watch stream hears each change."""
    port = free_port()
    service = start_grpc(
        logs,
        "--clickhouse-url",
        f"http://127.0.0.1:{port}",
        env={"ANALYTICS_GRPC_HEALTH_CHECK_INTERVAL": "0.2"},
        wait=False,
    )
    clickhouse = None
    try:
        assert wait_until_serving(service, status=None) == NOT_SERVING
        with service.channel() as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=120)
            assert next(watch).status == NOT_SERVING
            clickhouse = embedded_server.start(tmp_path / "data", port)
            assert next(watch).status == SERVING
            assert wait_until_serving(service, timeout=10) == SERVING
            clickhouse.stop()
            assert next(watch).status == NOT_SERVING
            watch.cancel()
        assert service.log().count("health NOT_SERVING until it can") == 2
        assert "ClickHouse answers again: health SERVING" in service.log()
    finally:
        if clickhouse is not None:
            clickhouse.stop()
        assert service.stop() == 0


def test_a_tokens_file_that_is_not_text_is_refused_naming_it(logs):
    """A binary file (a key copied in its DER form, say) stopped the start with a UnicodeDecodeError's traceback."""
    path = logs / "binary-tokens"
    path.write_bytes(b"\xff\xfe a-good-token-0123456789 user-1\n")
    output = refused(logs, "--tokens-file", str(path))
    assert f"cannot read the tokens file {path}: it is not UTF-8 text" in output and "Traceback" not in output, output
