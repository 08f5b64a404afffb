"""Running the gRPC service: id formats, tokens, TLS, reflection off, failures, deadlines and drain."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from analytics import analytics_pb2 as pb
from tests import datasets
from tests.grpc_server import (
    NOT_SERVING,
    SERVING,
    HeldRelay,
    health_status,
    listed_services,
    start_grpc,
    wait_for_exit,
)
from tests.intake import deliver, post_batch


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("grpc-operations")


@pytest.fixture(scope="module")
def small(analytics_db):
    dataset = datasets.generate(seed=51, users=3, workflows_per_user=2)
    deliver(analytics_db, dataset.messages)
    return dataset


def user_totals(stub, user: str, **kwargs) -> tuple:
    response = stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=30, **kwargs)
    return (
        response.total_workflows,
        response.total_jobs,
        response.total_joblogs,
        response.total_job_execution_duration,
    )


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


# -- ids ----------------------------------------------------------------------------------------


def test_uuid_ids(analytics_db, logs):
    user, workflow, job = (str(uuid.uuid4()) for _ in range(3))
    ids = {"user_id": user, "workflow_id": workflow}
    events = {
        "workflows": [
            {
                "event_id": str(uuid.uuid4()),
                "event_time": "2026-06-01T08:00:00Z",
                "event_type": "workflow",
                "event_name": "created",
                "kind": "HEARTBEAT",
                **ids,
            }
        ],
        "jobs": [
            {
                "event_id": str(uuid.uuid4()),
                "event_time": "2026-06-01T09:00:42.500Z",
                "event_type": "job",
                "event_name": "completed",
                "job_id": job,
                "status": "COMPLETED",
                "started_at": "2026-06-01T09:00:00Z",
                "completed_at": "2026-06-01T09:00:42.500Z",
                **ids,
            }
        ],
    }
    for topic, batch in events.items():
        assert post_batch(analytics_db, topic, batch).status == 200
    service = start_grpc(logs, "--clickhouse-url", analytics_db.url, "--id-format", "uuid")
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            assert user_totals(stub, user) == (1, 1, 0, 42)
            assert user_totals(stub, user.upper()) == (1, 1, 0, 42)  # UUIDs ignore case
            workflow_answer = stub.GetWorkflowAnalytics(
                pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=workflow.upper()), timeout=30
            )
            assert (workflow_answer.workflow_id, workflow_answer.total_jobs) == (workflow, 1)
            for request in (
                pb.GetUserAnalyticsRequest(user_id="user-123"),
                pb.GetUserAnalyticsRequest(user_id=user[:-1]),
            ):
                error = rpc_error(stub.GetUserAnalytics, request, timeout=30)
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "malformed UUID" in error.details()
            error = rpc_error(
                stub.GetWorkflowAnalytics,
                pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id="workflow-456"),
                timeout=30,
            )
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "workflow_id must be a UUID" in error.details()
            error = rpc_error(stub.GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=str(uuid.uuid4())), timeout=30)
            assert error.code() == grpc.StatusCode.NOT_FOUND
    finally:
        assert service.stop() == 0


# -- reflection ---------------------------------------------------------------------------------


def test_reflection_can_be_turned_off(analytics_db, logs, small):
    service = start_grpc(logs, "--clickhouse-url", analytics_db.url, "--no-reflection")
    try:
        with pytest.raises(grpc.RpcError) as caught:
            listed_services(service.target)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with service.channel() as channel:
            assert health_status(channel) == SERVING
            user = small.expected.users[0]
            assert user_totals(service.stub(channel), user) == small.expected.user(user)
    finally:
        assert service.stop() == 0


# -- tokens -------------------------------------------------------------------------------------

OWN_TOKEN = "own-token-0123456789"
READ_ALL_TOKEN = "dashboards-0123456789"


@pytest.fixture(scope="module")
def guarded(analytics_db, logs, small):
    """A service that needs tokens: one from the variable for the first user, one file token reading all."""
    tokens_file = logs / "tokens"
    tokens_file.write_text(f"# the dashboards read every user\n{READ_ALL_TOKEN} *\n")
    service = start_grpc(
        logs,
        "--clickhouse-url",
        analytics_db.url,
        "--tokens-file",
        str(tokens_file),
        env={"ANALYTICS_GRPC_TOKENS": f"{OWN_TOKEN}={small.expected.users[0]}"},
    )
    yield service
    assert service.stop() == 0


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_a_token_reads_its_own_user_only(guarded, small):
    own, other = small.expected.users[0], small.expected.users[1]
    with guarded.channel() as channel:
        stub = guarded.stub(channel)
        assert user_totals(stub, own, metadata=bearer(OWN_TOKEN)) == small.expected.user(own)
        error = rpc_error(
            stub.GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=other), timeout=30, metadata=bearer(OWN_TOKEN)
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        workflow = sorted(w for u, w in small.expected.workflows if u == other)[0]
        error = rpc_error(
            stub.ListWorkflowAnalytics,
            pb.ListWorkflowAnalyticsRequest(user_id=other),
            timeout=30,
            metadata=bearer(OWN_TOKEN),
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        # a token reading every user
        answer = stub.GetWorkflowAnalytics(
            pb.GetWorkflowAnalyticsRequest(user_id=other, workflow_id=workflow),
            timeout=30,
            metadata=bearer(READ_ALL_TOKEN),
        )
        assert answer.total_jobs == small.expected.workflow(other, workflow)[0]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([], "this server needs a token"),
        (bearer("not-a-known-token-at-all"), "the bearer token is not valid"),
        ([("authorization", f"Basic {OWN_TOKEN}")], "the bearer token is not valid"),
    ],
    ids=["missing", "unknown", "not-bearer"],
)
def test_no_or_a_bad_token_is_unauthenticated(guarded, small, metadata, message):
    with guarded.channel() as channel:
        error = rpc_error(
            guarded.stub(channel).GetUserAnalytics,
            pb.GetUserAnalyticsRequest(user_id=small.expected.users[0]),
            timeout=30,
            metadata=metadata,
        )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert message in error.details()


def test_health_and_reflection_need_no_token(guarded):
    with guarded.channel() as channel:
        assert health_status(channel) == SERVING
    assert "analytics.AnalyticsService" in listed_services(guarded.target)


# -- TLS ----------------------------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(logs) -> Path:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests make their certificates with the openssl command (apt-get install openssl)")
    folder = logs / "pki"
    folder.mkdir()
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA", cwd=folder
    )
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", *curve, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext",
            cwd=folder,
        )  # fmt: skip
    return folder


def test_tls(analytics_db, logs, certificates, small):
    pki = certificates
    trusted = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
    service = start_grpc(
        logs,
        "--clickhouse-url",
        analytics_db.url,
        "--tls-cert",
        str(pki / "server.pem"),
        "--tls-key",
        str(pki / "server.key"),
        credentials=trusted,
    )
    user = small.expected.users[0]
    try:
        with service.channel() as channel:
            assert user_totals(service.stub(channel), user) == small.expected.user(user)
        with grpc.insecure_channel(service.target) as plaintext:
            error = rpc_error(
                service.stub(plaintext).GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=user), timeout=5
            )
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        assert service.stop() == 0


def test_mutual_tls_needs_a_client_certificate(analytics_db, logs, certificates, small):
    pki = certificates
    client = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes(),
        certificate_chain=(pki / "client.pem").read_bytes(),
    )
    service = start_grpc(
        logs,
        "--clickhouse-url",
        analytics_db.url,
        "--tls-cert",
        str(pki / "server.pem"),
        "--tls-key",
        str(pki / "server.key"),
        "--tls-client-ca",
        str(pki / "ca.pem"),
        credentials=client,
    )
    user = small.expected.users[1]
    try:
        with service.channel() as channel:
            assert user_totals(service.stub(channel), user) == small.expected.user(user)
        anonymous = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
        with service.channel(anonymous) as channel:
            error = rpc_error(
                service.stub(channel).GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=user), timeout=5
            )
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        assert service.stop() == 0


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
        (["--tls-client-ca", "/nonexistent/ca.pem"], "ANALYTICS_GRPC_TLS_CLIENT_CA (mutual TLS) needs"),
        (["--clickhouse-url", "clickhouse:8123"], "is not http(s)://HOST[:PORT]"),
        (["--id-format", "numbers"], "Invalid value for '--id-format'"),
        (["--tokens-file", "/nonexistent/tokens"], "cannot read the tokens file /nonexistent/tokens"),
    ],
    ids=["unreadable-tls", "cert-without-key", "client-ca-without-cert", "bad-url", "id-format", "tokens-file"],
)
def test_bad_settings_are_refused_with_the_reason(logs, args, message):
    assert message in refused(logs, *args)


def test_a_malformed_tokens_file_names_its_line(logs):
    path = logs / "bad-tokens"
    path.write_text("a-good-token-0123456789 user-1\nno-user-for-this-token\n")
    assert f"{path} line 2: expected 'TOKEN USER_ID'" in refused(logs, "--tokens-file", str(path))


# -- ClickHouse failing, deadlines and drain ----------------------------------------------------


def test_clickhouse_failures_are_internal_and_leak_no_sql(logs, analytics_db):
    from tests.embedded_server import free_port

    nothing_there = start_grpc(logs, "--clickhouse-url", f"http://127.0.0.1:{free_port()}")
    wrong_user = start_grpc(logs, "--clickhouse-url", analytics_db.url, env={"ANALYTICS_CLICKHOUSE_USER": "intruder"})
    try:
        for service in (nothing_there, wrong_user):
            with service.channel() as channel:
                error = rpc_error(
                    service.stub(channel).GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id="user-123"), timeout=30
                )
            assert error.code() == grpc.StatusCode.INTERNAL
            assert error.details() == "the analytics store could not answer; see the server log"
        assert "is unreachable" in nothing_there.log()
        assert "AUTHENTICATION_FAILED" in wrong_user.log() or "403" in wrong_user.log()
    finally:
        assert nothing_there.stop() == 0
        assert wrong_user.stop() == 0


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


def test_ctrl_c_stops_as_sigterm_does(logs, analytics_db):
    service = start_grpc(logs, "--clickhouse-url", analytics_db.url)
    assert service.stop(signal.SIGINT) == 0
    assert "gRPC AnalyticsService stopped" in service.log()
